"""Real services a test starts on loopback and stops again: coturn, nginx, Redis.

Each needs a Debian package that `.ci/run` installs. Locally a missing
binary skips the test with the line that installs it; in CI (``CI`` set)
it fails, so a broken install step cannot pass unnoticed.
"""

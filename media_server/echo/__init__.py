"""The server's echo guard: its own voice, heard back in the microphone, removed
before the listener hears it (see guard.py)."""

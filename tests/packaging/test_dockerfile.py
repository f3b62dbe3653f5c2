"""The Dockerfile, read as Docker would (no Docker daemon on the test
machines): the promises it makes, and that what it copies exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())  # join continuations
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_slim_base_non_root_user_and_health_check():
    steps = _instructions()
    bases = [arg for op, arg in steps if op == "FROM"]
    assert bases and all("-slim" in base for base in bases)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    (health,) = [arg for op, arg in final if op == "HEALTHCHECK"]
    assert "/health" in health and "8080" in health
    (cmd,) = [arg for op, arg in final if op == "CMD"]
    assert '"voice-agent"' in cmd and '"8080"' in cmd


def test_everything_it_copies_is_in_the_repository_and_not_ignored():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for op, arg in _instructions():
        if op != "COPY" or arg.startswith("--from"):
            continue
        *sources, _ = arg.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source not in ignored, source
    # The wheel's page must reach the build: signaling/ is copied whole.
    assert (ROOT / "signaling" / "static" / "index.html").exists()


def test_the_agents_database_is_in_a_volume():
    steps = _instructions()
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    (volume,) = [arg for op, arg in final if op == "VOLUME"]
    assert "/app/data" in volume
    envs = " ".join(arg for op, arg in final if op == "ENV")
    assert "DATABASE_URL=sqlite:////app/data/" in envs

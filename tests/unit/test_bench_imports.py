"""bench/ shares the fakes, the aiortc client and audio helpers with tests/,
but never a conftest: importing one configures host addresses process-wide
and pulls in pytest, neither of which a benchmark process should get."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import bench

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_no_bench_module_imports_a_conftest_or_pytest() -> None:
    modules = [f"bench.{m.name}" for m in pkgutil.iter_modules(bench.__path__)]
    assert "bench.bargein" in modules
    # A fresh interpreter: this one has pytest and the conftests loaded already.
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = json.loads(out.stdout)
    unwanted = [m for m in loaded if m.split(".")[-1] == "conftest" or m.split(".")[0] == "pytest"]
    assert not unwanted, f"bench imports {unwanted}"

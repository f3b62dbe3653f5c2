"""`.env.example` lists every setting of config.py once, with its default.

When a setting is added, this fails and prints the line to add.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from media_server.config import _FLAG_ONLY, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
LINE = re.compile(r"^#\s*([A-Z][A-Z0-9_]*)=(.*)$")


def _default_text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _listed() -> list[tuple[str, str]]:
    return [m.groups() for line in EXAMPLE.read_text().splitlines() if (m := LINE.match(line))]


def test_every_setting_is_listed_once_with_its_default():
    defaults = Settings()
    expected = {
        f.name.upper(): _default_text(getattr(defaults, f.name))
        for f in fields(Settings)
        if f.name not in _FLAG_ONLY
    }
    listed = _listed()
    names = [name for name, _ in listed]
    missing = [f"# {n}={v}" for n, v in expected.items() if n not in names]
    assert not missing, "add to .env.example:\n" + "\n".join(missing)
    assert sorted(names) == sorted(set(names)), "a setting is listed twice"
    assert set(names) <= set(expected), f"not settings: {set(names) - set(expected)}"
    assert dict(listed) == expected


def test_uncommented_it_loads_as_the_defaults(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("\n".join(f"{name}={value}" for name, value in _listed()))
    assert load_settings({}, environ={}, dotenv_path=dotenv) == Settings()

"""The phone settings: a number map, a flag, a public URL, a secret kept out of logs."""

from __future__ import annotations

import pytest

from media_server.config import ConfigError
from tests.conftest import make_settings


def test_phone_settings_are_read() -> None:
    s = make_settings(
        phone_numbers="+1 555 123 0000=receptionist, +15551230001=sales",
        twilio_allow_unsigned="true",
        public_url="https://voice.example.com/",
        twilio_auth_token="tok-" + "x" * 28,
    )
    assert s.phone_numbers == (("+15551230000", "receptionist"), ("+15551230001", "sales"))
    assert s.twilio_allow_unsigned is True
    assert s.public_url == "https://voice.example.com"
    assert s.twilio_auth_token not in repr(s) and s.twilio_auth_token in s.secrets


@pytest.mark.parametrize(
    "overrides",
    [
        {"phone_numbers": "+15551230000"},
        {"phone_numbers": "not-a-number=sales"},
        {"twilio_allow_unsigned": "maybe"},
        {"public_url": "voice.example.com"},
    ],
)
def test_bad_phone_settings_name_the_setting(overrides) -> None:
    with pytest.raises(ConfigError, match=next(iter(overrides)).upper()):
        make_settings(**overrides)

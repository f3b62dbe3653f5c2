"""Who may read /metrics (DESIGN: a server that needs tokens for calls must
not tell strangers how many calls it carries)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from signaling.app import metrics_refusal
from tests.conftest import make_settings

TOKEN = "metrics-token-0123456789"
SECRET = "auth-secret-0123456789abcdef"


class Peer:
    """The transport of a request from ``address``."""

    def __init__(self, address: str) -> None:
        self.address = address

    def get_extra_info(self, name: str, default=None):
        return (self.address, 40000) if name == "peername" else default


def request(address: str, authorization: str | None = None):
    headers = {"Authorization": authorization} if authorization else {}
    return make_mocked_request("GET", "/metrics", headers=headers, transport=Peer(address))


@pytest.mark.parametrize("address", ["127.0.0.1", "203.0.113.5", "::1"])
def test_an_open_server_shows_its_metrics_to_anyone(address: str) -> None:
    assert metrics_refusal(make_settings(), request(address)) is None


def test_with_auth_secret_only_this_machine_reads_them() -> None:
    settings = make_settings(AUTH_SECRET=SECRET)
    assert metrics_refusal(settings, request("127.0.0.1")) is None
    assert metrics_refusal(settings, request("::1")) is None
    refused = metrics_refusal(settings, request("203.0.113.5"))
    assert refused is not None and refused.status == 403
    assert b"METRICS_TOKEN" in refused.body


@pytest.mark.parametrize("auth_secret", ["", SECRET])
def test_a_metrics_token_is_needed_from_everywhere_once_set(auth_secret: str) -> None:
    settings = make_settings(METRICS_TOKEN=TOKEN, AUTH_SECRET=auth_secret)
    assert metrics_refusal(settings, request("203.0.113.5", f"Bearer {TOKEN}")) is None
    for presented in (None, "Bearer wrong-token-0123456789", TOKEN + "x", "Basic abc"):
        refused = metrics_refusal(settings, request("127.0.0.1", presented))
        assert refused is not None and refused.status == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")

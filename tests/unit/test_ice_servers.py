"""TURN credentials the REST way, and the ICE settings that lead to them."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from media_server.config import ConfigError, load_settings
from media_server.ice_servers import IceServers, turn_rest_credentials
from media_server.rtc.ice import rtc_configuration

SECRET = "coturn-static-auth-secret"
TURN = "turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349?transport=tcp"


def settings(**env: str):
    return load_settings({}, environ=env, dotenv_path=None)


def test_rest_credentials_are_what_coturn_recomputes():
    username, credential = turn_rest_credentials(SECRET, 600, now=1_000_000.4)
    expiry, _, nonce = username.partition(":")
    assert int(expiry) == 1_000_600 and len(nonce) == 16
    expected = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected


def test_each_call_gets_its_own_turn_credentials():
    ice = IceServers(
        settings(
            TURN_URLS=TURN, TURN_SECRET=SECRET, TURN_TTL_S="7200", ICE_SERVERS="stun:s.example"
        ),
        clock=lambda: 1000.0,
    )
    first, second = ice.for_call(), ice.for_call()
    assert first[0] == {"urls": ["stun:s.example"]}
    assert first[1]["urls"] == TURN.split(",")
    assert first[1]["username"].startswith("8200:")
    assert first[1]["username"] != second[1]["username"]
    assert SECRET not in repr(ice) and SECRET not in str(first)


def test_static_credentials_and_nothing_configured():
    ice = IceServers(settings(TURN_URLS=TURN, TURN_USERNAME="agent", TURN_PASSWORD="pw"))
    assert ice.for_call() == [{"urls": TURN.split(","), "username": "agent", "credential": "pw"}]
    assert IceServers(settings()).for_call() == []  # never a public STUN server


def test_the_server_peer_gets_the_same_servers_and_policy():
    ice = IceServers(settings(TURN_URLS=TURN, TURN_SECRET=SECRET, ICE_TRANSPORT_POLICY="relay"))
    config = rtc_configuration(ice.for_call(), ice.transport_policy)
    assert config.iceTransportPolicy.value == "relay"
    assert config.iceServers[0].urls == TURN.split(",")
    assert config.iceServers[0].username.count(":") == 1
    assert rtc_configuration().iceServers == []  # not aiortc's default STUN


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TURN_URLS": TURN}, "TURN_URLS needs TURN_SECRET"),
        ({"TURN_URLS": TURN, "TURN_SECRET": SECRET, "TURN_USERNAME": "a"}, "set one, not both"),
        ({"TURN_URLS": TURN, "TURN_USERNAME": "a"}, "go together"),
        ({"TURN_SECRET": SECRET}, "TURN_URLS is empty"),
        ({"TURN_URLS": "turn.example.com", "TURN_SECRET": SECRET}, "TURN_URLS"),
        ({"TURN_URLS": "turn:h?transport=sctp", "TURN_SECRET": SECRET}, "transport=udp"),
        ({"ICE_SERVERS": "turn:h:3478"}, "put it in TURN_URLS"),
        ({"ICE_TRANSPORT_POLICY": "relay"}, "needs TURN_URLS"),
        ({"ICE_TRANSPORT_POLICY": "none"}, "ICE_TRANSPORT_POLICY"),
        (
            {"TURN_URLS": TURN, "TURN_SECRET": SECRET, "TURN_TTL_S": "600"},
            "shorter than MAX_SESSION_S",
        ),
    ],
)
def test_bad_turn_settings_say_what_is_wrong(env, message):
    with pytest.raises(ConfigError, match=message) as info:
        settings(**env)
    assert SECRET not in str(info.value)


def test_turn_secrets_stay_out_of_repr():
    s = settings(TURN_URLS=TURN, TURN_USERNAME="agent", TURN_PASSWORD="hunter2-password")
    assert "hunter2-password" not in repr(s)
    assert "hunter2-password" in s.secrets

"""The session's deadlines with an injected clock."""

from __future__ import annotations

import pytest

from media_server.liveness import Limits, Liveness

LIMITS = Limits(connect_timeout_s=15, ping_timeout_s=10, idle_timeout_s=60, max_session_s=600)


def fresh(now: float = 100.0) -> Liveness:
    return Liveness(LIMITS, now)


def test_not_connected_in_time():
    live = fresh()
    assert live.expired(115.0, busy=False) is None
    assert live.expired(115.1, busy=False) == "connect_timeout"
    live.connected = True
    assert live.expired(115.1, busy=False) is None


def test_pings_arm_the_deadline_and_any_message_refreshes_it():
    live = fresh()
    live.connected = True
    live.heard_from_page(101.0)  # a message before any ping does not arm it
    assert live.expired(150.0, busy=True) is None
    live.heard_from_page(150.0, ping=True)
    live.heard_from_page(158.0)  # a text message counts as a sign of life
    assert live.expired(168.0, busy=True) is None
    assert live.expired(168.1, busy=True) == "peer_gone"


def test_idle_only_counts_when_no_turn_is_running():
    live = fresh()
    live.connected = True
    live.activity(120.0)
    assert live.expired(180.1, busy=True) is None
    assert live.expired(180.1, busy=False) == "idle_timeout"


@pytest.mark.parametrize("busy", [False, True])
def test_the_maximum_duration_holds_whatever_happens(busy: bool):
    live = fresh()
    live.connected = True
    live.activity(699.0)
    assert live.expired(700.1, busy=busy) == "max_duration"


def test_the_first_deadline_passed_names_the_reason():
    live = fresh()
    live.heard_from_page(100.0, ping=True)
    # Never connected and silent: connect_timeout comes first in order.
    assert live.expired(1000.0, busy=False) == "connect_timeout"

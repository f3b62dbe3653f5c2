"""The events channel: bounded backlog, nothing after session_end, floods
and malformed messages answered once."""

from __future__ import annotations

import json

from media_server import protocol
from media_server.events import MAX_EVENT_BACKLOG_BYTES, EventChannel


class Channel:
    """What EventChannel uses of aiortc's RTCDataChannel."""

    def __init__(self) -> None:
        self.readyState = "open"
        self.bufferedAmount = 0
        self.sent: list[dict] = []

    def send(self, message: str) -> None:
        self.sent.append(json.loads(message))


def attached() -> tuple[EventChannel, Channel]:
    events, channel = EventChannel("test"), Channel()
    events.attach(channel)
    return events, channel


def test_nothing_is_sent_before_the_channel_is_open():
    events = EventChannel("test")
    events.send(protocol.pong())  # no channel yet: dropped quietly
    channel = Channel()
    channel.readyState = "connecting"
    events.attach(channel)
    events.send(protocol.pong())
    assert channel.sent == []


def test_a_page_that_stops_reading_loses_events_not_memory():
    events, channel = attached()
    channel.bufferedAmount = MAX_EVENT_BACKLOG_BYTES + 1
    for _ in range(100):
        events.send(protocol.pong())
    assert channel.sent == [] and events.dropped == 100
    channel.bufferedAmount = 0
    events.send(protocol.pong())
    assert channel.sent == [{"type": "pong"}]


async def test_session_end_is_the_last_event():
    events, channel = attached()
    await events.end("idle_timeout")
    events.send(protocol.pong())
    await events.end("again")
    assert channel.sent == [{"type": "session_end", "reason": "idle_timeout"}]


def test_a_malformed_message_is_one_error_event():
    events, channel = attached()
    assert events.receive("{not json", 0.0) is None
    assert events.receive('{"type":"ping"}', 0.0) == protocol.ClientMessage(type="ping")
    (error,) = channel.sent
    assert error["type"] == "error" and error["code"]


def test_a_flood_is_dropped_before_parsing_with_one_error_a_second():
    events, channel = attached()
    accepted = sum(events.receive('{"type":"ping"}', 10.0) is not None for _ in range(200))
    assert accepted == protocol.CLIENT_MESSAGE_BURST
    assert [e["code"] for e in channel.sent] == ["rate_limited"]
    events.receive('{"type":"ping"}', 10.5)
    assert len(channel.sent) == 1  # still within the second
    for _ in range(200):
        events.receive('{"type":"ping"}', 11.01)
    assert [e["code"] for e in channel.sent] == ["rate_limited", "rate_limited"]

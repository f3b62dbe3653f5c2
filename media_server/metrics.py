"""Process metrics in Prometheus form, one registry per app (tests run many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Buckets for turn-stage latencies (ms): voice agents live between 100 ms and a few seconds.
_LATENCY_BUCKETS_MS = (25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions_active = Gauge(
            "voice_agent_sessions_active", "Sessions currently open", registry=r
        )
        self.sessions_total = Counter("voice_agent_sessions", "Sessions started", registry=r)
        self.sessions_ended = Counter(
            "voice_agent_sessions_ended", "Sessions ended, by reason", ["reason"], registry=r
        )
        self.offers_rejected = Counter(
            "voice_agent_offers_rejected", "Offers refused, by HTTP status", ["status"], registry=r
        )
        self.turns = Counter(
            "voice_agent_turns", "Turns finished, by outcome", ["outcome"], registry=r
        )
        self.errors = Counter(
            "voice_agent_provider_errors",
            "Provider errors, by stage and kind",
            ["stage", "kind"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "voice_agent_turn_stage_ms",
            "Milliseconds from end of user speech to each stage of a turn",
            ["stage"],
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.loop_lag = Gauge(
            "voice_agent_event_loop_lag_ms", "Most recent event-loop lag sample", registry=r
        )

    def observe_stage(self, name: str, ms: float) -> None:
        self.stage_latency.labels(stage=name.removesuffix("_ms")).observe(ms)

    def render(self) -> bytes:
        return generate_latest(self.registry)

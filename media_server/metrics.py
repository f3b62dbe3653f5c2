"""Process metrics in Prometheus form.

One registry per app (the tests run many apps in one process). With
``--workers N`` the workers share ``PROMETHEUS_MULTIPROC_DIR`` (set by the
parent before any worker imports prometheus_client) and any worker's
``/metrics`` reports the sum over all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Turn-stage latencies (ms): voice agents live between 100 ms and a few seconds.
_LATENCY_BUCKETS_MS = (25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)
# Event-loop lag (ms): above ~20 ms outbound audio frames start leaving late.
_LAG_BUCKETS_MS = (1, 2, 5, 10, 15, 20, 30, 50, 100, 200, 500, 1000)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions_active = Gauge(
            "voice_agent_sessions_active",
            "Sessions currently open",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.sessions_total = Counter("voice_agent_sessions", "Sessions started", registry=r)
        self.sessions_ended = Counter(
            "voice_agent_sessions_ended", "Sessions ended, by reason", ["reason"], registry=r
        )
        self.calls = Counter(
            "voice_agent_calls",
            "Calls answered, by transport (webrtc, twilio, pcm_ws)",
            ["transport"],
            registry=r,
        )
        self.calls_refused = Counter(
            "voice_agent_calls_refused",
            "Phone streams and webhooks refused, by transport and reason",
            ["transport", "reason"],
            registry=r,
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
        self.fallbacks = Counter(
            "voice_agent_provider_fallbacks",
            "Requests an engine failed and the next engine of its chain took",
            ["stage", "from", "to"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "voice_agent_turn_stage_ms",
            "Milliseconds from end of user speech to each stage of a turn",
            ["stage"],
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.speculative_stt = Counter(
            "voice_agent_speculative_stt",
            "Speculative transcriptions of a turn at its pauses (batch STT; billed requests)",
            registry=r,
        )
        self.speculative_stt_per_turn = Histogram(
            "voice_agent_speculative_stt_per_turn",
            "Speculative transcriptions a turn took (turns that took any)",
            buckets=(1, 2, 3, 5, 10, 20),
            registry=r,
        )
        self.preemptive = Counter(
            "voice_agent_preemptive_replies",
            "LLM replies started at a pause before the turn ended, by outcome "
            "(started, adopted by the turn, discarded: the person went on)",
            ["outcome"],
            registry=r,
        )
        self.preemptive_wasted_tokens = Counter(
            "voice_agent_preemptive_wasted_tokens",
            "LLM tokens of preemptive replies that were discarded",
            registry=r,
        )
        self.preemptive_wasted_per_turn = Histogram(
            "voice_agent_preemptive_wasted_tokens_per_reply",
            "LLM tokens each discarded preemptive reply had received",
            buckets=(0, 1, 5, 10, 25, 50, 100, 250, 500),
            registry=r,
        )
        self.outbound_late = Counter(
            "voice_agent_outbound_frames_late",
            "Agent audio frames sent more than 20 ms behind schedule (an overloaded loop)",
            registry=r,
        )
        self.loop_lag = Histogram(
            "voice_agent_event_loop_lag_ms",
            "How late the event loop woke a 250 ms timer, in ms",
            buckets=_LAG_BUCKETS_MS,
            registry=r,
        )

    def observe_stage(self, name: str, ms: float) -> None:
        self.stage_latency.labels(stage=name.removesuffix("_ms")).observe(ms)

    def render(self) -> bytes:
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=path)
        return generate_latest(merged)

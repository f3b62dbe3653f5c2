"""What a tool round costs a turn: the same typed turn answered in words, after
one tool call, and after two calls side by side.

In process: the real OpenAILLM (real SDK, real HTTP) against the loopback
OpenAI fake streaming tool calls, the receptionist's real tools on a real
SQLite file, a fake TTS and a fast speaker. The fake answers at once, so
what is measured is our side of a round: the second request, the tools,
the store's thread. Compare the rows of one run, not across machines.

    uv run python -m bench.tool_rounds [--turns 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import percentile, print_table, run_bench
from media_server.agents import BUILTIN_AGENTS
from media_server.deadlines import StageDeadlines
from media_server.providers.base import Providers
from media_server.providers.openai_llm import OpenAILLM
from media_server.store import Database
from media_server.text import ConversationHistory
from media_server.tools.desk import persona_tools
from media_server.tools.registry import Toolbox
from media_server.turn import Turn, TurnContext
from tests.fakes.engines import FakeSTT, FakeTTS
from tests.fakes.openai_fake import start_openai_fake
from tests.fakes.pipeline import Playback, fast_speaker

KEY = "sk-bench-tools"
AGENT = BUILTIN_AGENTS["receptionist"]
TODAY = dt.date(2026, 12, 4)


def _calls(count: int):
    def plan(body: dict[str, Any]) -> list[dict[str, Any]] | None:
        if count == 0 or any(m["role"] == "tool" for m in body["messages"]):
            return None
        days = ["2026-12-08", "2026-12-09"][:count]
        return [{"name": "check_availability", "arguments": {"date": d}} for d in days]

    return plan


async def _run(turns: int) -> dict[str, Any]:
    fake = await start_openai_fake(api_key=KEY, reply="Tuesday at ten is free.")
    llm = OpenAILLM(api_key=KEY, base_url=fake.base_url)
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(f"sqlite:///{Path(tmp)}/bench.db")
        rows = []
        try:
            box = Toolbox(persona_tools(AGENT, db, lambda: TODAY))
            for label, count in (("words only", 0), ("one tool", 1), ("two tools", 2)):
                fake.knobs.tool_calls = _calls(count)
                done_ms = []
                for i in range(turns + 2):  # the first two warm the connection up
                    ctx = TurnContext(
                        agent=AGENT,
                        providers=Providers(stt=FakeSTT(), llm=llm, tts=FakeTTS(audio_ms=20)),
                        speaker=fast_speaker(),
                        history=ConversationHistory(),
                        deadlines=StageDeadlines(10, 10, 10),
                        send=lambda m: None,
                        tools=box,
                    )
                    async with Playback(ctx.speaker):
                        result = await Turn(ctx, 1, text="Is Tuesday at ten free?").run()
                    assert result.outcome == "completed", result
                    if i >= 2:
                        done_ms.append(result.metrics["llm_done_ms"])
                rows.append(
                    {
                        "turn": label,
                        "requests": (count and 2) or 1,
                        "median_ms": statistics.median(done_ms),
                        "p90_ms": percentile(done_ms, 90),
                        "n": len(done_ms),
                    }
                )
        finally:
            await db.close()
            await llm.close()
            await fake.close()
    base = rows[0]["median_ms"]
    for row in rows:
        row["vs_words"] = row["median_ms"] / base if base else None
    print_table(rows, ["turn", "requests", "median_ms", "p90_ms", "vs_words", "n"])
    return {"what": "reply written (llm_done_ms), in process, fake OpenAI", "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    args = parser.parse_args()
    run_bench("tool_rounds", _run, args.turns)


if __name__ == "__main__":
    main()

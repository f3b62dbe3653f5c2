"""One phone call: a carrier's stream as the session's transport, and what a
phone call adds to a conversation (a greeting on answer, keys pressed as
text, hanging up after goodbye).

The caller's audio arrives at the carrier's rate and goes to the session as
16 kHz mono in 20 ms frames, as a browser's does; the agent's voice leaves
through a ``PhoneSpeaker``. The model hangs up and transfers with the
tools of call_tools.py; an exchange of goodbyes also ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable

from media_server.audio.pcm import PcmResampler
from media_server.providers.scripted.common import INTROS
from media_server.session import VoiceSession
from media_server.telephony.call_tools import CallControl
from media_server.telephony.line import (
    Audio,
    Carrier,
    Dtmf,
    LineEvent,
    Marked,
    Started,
    Stopped,
    TransferFailed,
)
from media_server.telephony.speaker import PhoneSpeaker
from media_server.transport import CallHooks, NoEvents
from media_server.turn import Turn, TurnResult, wait_played
from media_server.types import ProviderError

log = logging.getLogger(__name__)

LISTEN_RATE = 16000
LISTEN_FRAME_BYTES = LISTEN_RATE // 50 * 2  # 20 ms, as InboundAudio hands them
WS_CLOSE_TIMEOUT_S = 2.0
_CALLER_BYE = re.compile(
    r"\b(bye|goodbye|good bye|that'?s all|that is all|nothing else|hang up)\b", re.I
)
_AGENT_BYE = re.compile(r"\bgood ?bye\b", re.I)


class PhoneLine:
    """A carrier's media stream as a ``CallTransport``."""

    def __init__(
        self,
        carrier: Carrier,
        started: Started,
        *,
        send_str: Callable[[str], Awaitable[None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
        close_ws: Callable[[], Awaitable[object]],
    ) -> None:
        self.kind = carrier.name
        self.started = started
        self._carrier = carrier
        self._send_str = send_str
        wire = carrier.wire(send_str, send_bytes, started.stream_id)
        self.speaker = PhoneSpeaker(wire, rate=carrier.rate, encode=carrier.encode)
        self.events = NoEvents()
        self.on_dtmf: Callable[[str], None] = lambda digit: None
        self._close_ws = close_ws
        self._to_listener = PcmResampler(carrier.rate, 1, LISTEN_RATE)
        self._inbound = b""
        self._hooks: CallHooks | None = None
        self._media_flowing = False
        self._closed = False

    def bind(self, hooks: CallHooks) -> None:
        self._hooks = hooks
        self.speaker.start()

    def feed(self, event: LineEvent | None) -> bool:
        """One message of the stream; False once the caller has hung up."""
        hooks = self._hooks
        if hooks is None or self._closed:
            return False
        if isinstance(event, Audio):
            if not self._media_flowing:
                self._media_flowing = True
                hooks.on_connected()
            data = self._inbound + self._to_listener.convert(event.pcm)
            whole = len(data) - len(data) % LISTEN_FRAME_BYTES
            now = time.monotonic()
            for offset in range(0, whole, LISTEN_FRAME_BYTES):
                hooks.on_pcm(data[offset : offset + LISTEN_FRAME_BYTES], now)
            self._inbound = data[whole:]
        elif isinstance(event, Marked):
            self.speaker.confirm(event.name)
        elif isinstance(event, Dtmf):
            self.on_dtmf(event.digit)
        elif isinstance(event, Stopped):
            hooks.on_gone("caller_hung_up")
            return False
        return True

    async def transfer(self, number: str) -> None:
        """Hand the call to ``number`` (the carrier's way); raises ``TransferFailed``."""
        if self._closed:
            raise TransferFailed("the line is closed")
        await self._carrier.transfer(self.started, number, self._send_str)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.speaker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._close_ws(), WS_CLOSE_TIMEOUT_S)


class Greeting(Turn):
    """The agent's first words on answer: a fixed sentence spoken like a
    reply (the caller can talk over it; the history keeps what was heard)."""

    async def run(self) -> TurnResult:
        self.begun = True
        text = self.text or ""
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        pieces.put_nowait(text)
        pieces.put_nowait(None)
        try:
            await self._speak(pieces)
            await wait_played(self.ctx.speaker)
        except ProviderError as err:
            log.warning("greeting not spoken: %s (%s)", err.stage, err.kind)
            self.record_heard()
            return TurnResult("error", reply=text, error=err)
        except asyncio.CancelledError:
            self.record_heard()
            raise
        self._heard_recorded = True
        self.ctx.history.add_assistant(text)
        return TurnResult("completed", reply=text)


class PhoneCall:
    """The phone's own manners around a session on a ``PhoneLine``."""

    def __init__(
        self, session: VoiceSession, line: PhoneLine, control: CallControl | None = None
    ) -> None:
        """``control``: the phone tools' requests (end_call, transfer_call), if offered."""
        self.session = session
        self.line = line
        self.control = control
        line.on_dtmf = self._on_dtmf
        session.after_turn.append(self._after_turn)

    def answer(self) -> None:
        """Greet the caller: a turn of the agent's own."""
        agent = self.session.agent
        text = greeting_for(agent.persona, agent.name)
        self.session.conversation.open_with(lambda ctx, turn_id: Greeting(ctx, turn_id, text=text))

    def _on_dtmf(self, digit: str) -> None:
        self.session.text_in(f"The caller pressed {digit}.")

    def end_call(self, reason: str = "agent_hung_up") -> None:
        """Hang up once what the agent said has been played (the tool's hook)."""
        self.session.close_soon(reason)

    def _after_turn(self) -> None:
        """The model's end_call/transfer_call take effect once its reply was
        heard (a turn ends after its last mark came back); a model that calls
        no tools (the scripted one) hangs up on an exchange of goodbyes."""
        reason = self.control.hang_up_now() if self.control is not None else None
        talking = self.session.listener.person_speaking or self.session.conversation.busy
        if reason == "agent_hung_up" and talking:
            log.info("%s: the caller is talking; not hanging up", self.line.kind)
            return
        if reason is not None:
            log.info("%s: %s after the reply was heard", self.line.kind, reason)
            self.end_call(reason)
            return
        self._hang_up_after_goodbye()

    def _hang_up_after_goodbye(self) -> None:
        """A caller's goodbye answered with the agent's ends the call."""
        recent = self.session.history.messages("")[-2:]
        if len(recent) < 2 or recent[0].role != "user" or recent[1].role != "assistant":
            return
        if _CALLER_BYE.search(recent[0].content) and _AGENT_BYE.search(recent[1].content):
            log.info("%s: goodbye said; hanging up", self.line.kind)
            self.end_call()


def greeting_for(persona: str, name: str) -> str:
    intro = INTROS.get(persona)
    first = intro.split(". ")[0].rstrip(".") + "." if intro else f"Hello, this is {name}."
    return f"{first} How can I help you?"

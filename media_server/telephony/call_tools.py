"""The tools only a phone call has: ``end_call`` and ``transfer_call``.

Each phone call's model is offered its agent's tools plus these (a box of
its own, ``Toolbox.with_tools``: the agent's box, shared by all its calls,
is left alone). WebRTC calls never see them.

- ``end_call`` does not cut the line at once: the call ends after the
  turn, once the carrier's marks say the caller heard the reply (so the
  model may say goodbye before or after calling it). If the caller talks
  over the goodbye (a barge-in clears the line), they have more to say:
  the call goes on.
- ``transfer_call`` (only when the agent has a ``transfer_number``) is
  ``heard_first``: what the model said before it ("I'll put you through")
  is played and confirmed before the carrier gets the transfer. A carrier
  that refuses becomes an error result the model can explain.
"""

from __future__ import annotations

import json
import logging

from media_server.telephony.line import TransferFailed
from media_server.tools.registry import Tool, ToolFailed, ToolResult

log = logging.getLogger(__name__)

_NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}
TRANSFER_TIMEOUT_S = 30.0  # the words before it are played first, then the request


class CallControl:
    """What the model asked the line to do; ``PhoneCall`` acts on it after each turn."""

    def __init__(self, line, transfer_number: str = "") -> None:  # line: call.PhoneLine
        self._line = line
        self._transfer_number = transfer_number
        self.end_reason: str | None = None  # set by a tool: end the call after this turn
        self._clears_at_request = 0

    def tools(self) -> list[Tool]:
        tools = [
            Tool(
                "end_call",
                "Hang up the phone call. Call it when the conversation is over and the "
                "caller has nothing more to ask; say goodbye in the same reply. The call "
                "ends once your last words have been heard.",
                _NO_ARGUMENTS,
                self._end_call,
            )
        ]
        if self._transfer_number:
            tools.append(
                Tool(
                    "transfer_call",
                    "Transfer the caller to a human colleague. First tell the caller you "
                    "are putting them through, then call this. If it fails, say so and "
                    "offer to take a message.",
                    _NO_ARGUMENTS,
                    self._transfer_call,
                    timeout_s=TRANSFER_TIMEOUT_S,
                    atomic=True,  # a transfer started is seen through
                    heard_first=True,
                )
            )
        return tools

    def hang_up_now(self) -> str | None:
        """After a turn: the reason to end the call, or None to go on."""
        reason, self.end_reason = self.end_reason, None
        if reason == "agent_hung_up" and self._line.speaker.clears_sent != self._clears_at_request:
            log.info("%s: the caller spoke over the goodbye; staying on", self._line.kind)
            return None
        return reason

    async def _end_call(self, arguments: dict) -> ToolResult:
        self.end_reason = "agent_hung_up"
        self._clears_at_request = self._line.speaker.clears_sent
        return ToolResult(
            True,
            json.dumps({"ok": True, "note": "the call ends once your reply has been heard"}),
            "hanging up after this reply",
        )

    async def _transfer_call(self, arguments: dict) -> ToolResult:
        number = self._transfer_number
        try:
            await self._line.transfer(number)
        except TransferFailed as exc:
            raise ToolFailed(f"the transfer did not go through: {exc}") from None
        log.info("%s: call transferred", self._line.kind)
        self.end_reason = "transferred"
        return ToolResult(
            True,
            json.dumps({"ok": True, "note": "the caller is being transferred; say nothing more"}),
            f"transferred to {number}",
        )

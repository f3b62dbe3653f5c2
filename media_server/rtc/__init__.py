"""Every adaptation of aiortc and aioice lives in this package.

Each module says why it exists; ``install()`` applies the process-wide ones
once, at start-up (``create_app`` calls it):

- ``ice``: offer exactly the configured host candidates (aioice never offers
  127.0.0.1 and has no per-connection option), and never fall back to
  aiortc's public STUN server.
- ``level``: aiortc's per-frame RFC 6465 audio level in numpy instead of pure
  Python, and none at all for frames marked silent.

The per-connection ones are applied by ``peer.PeerConnection``:

- ``jitter``: an inbound jitter buffer without aiortc's 80 ms of prefetch
  (replaces a private attribute of each audio receiver).
- ``transports``: stopping the DTLS and ICE transports that ``pc.close()``
  leaves behind when it raises halfway (reads private attributes).

No private aiortc attribute is read anywhere outside this package.
"""

from __future__ import annotations

from media_server.rtc import ice, level


def install(host_addresses: tuple[str, ...]) -> None:
    """Apply the process-wide adaptations (idempotent).

    ``host_addresses`` are the only host candidates offered; empty means
    aioice's own interface scan.
    """
    ice.configure_host_addresses(host_addresses)
    level.install()

"""Phone calls: carriers' media streams as call transports (README "Phone calls").

``mulaw``: G.711 μ-law. ``speaker``: the agent's voice paced in 20 ms frames
with marks. ``twilio`` and ``pcm_ws``: one carrier's wire format each.
``call``: one phone line as a ``CallTransport``.
"""

"""Listening: when the person speaks, when their turn ends, when they barge in.

Pure and synchronous: frames and the time they end go in, decisions come
out. No asyncio and no aiortc, so the policy is tested with synthetic audio
and an exact clock (tests/unit/test_listener.py).

- ``segmenter``: voice activity -> speech started / ended / dropped.
- ``listener``: the turn-taking policy on top: a new turn, a barge-in, or
  speech to ignore while the agent holds the floor.
"""

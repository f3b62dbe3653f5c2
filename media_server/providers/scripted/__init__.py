"""The offline scripted agent, split by purpose; the public face is ``scripted_llm``.

- ``reading``: normalising what the caller said and what our last reply asked
- ``details``: days, times, names, phone numbers and counts pulled out of a turn
- ``common``: conversation state, persona texts and phrasing every persona shares
- ``receptionist``, ``sales``, ``support``, ``generic``: one persona each
- ``compose``: the moves every persona shares, and ``compose_reply`` dispatching by persona
"""

from media_server.text import ConversationHistory, SentenceChunker, heard_prefix, speakable


def chunk_all(deltas, **kw):
    chunker = SentenceChunker(**kw)
    out = []
    for d in deltas:
        out.extend(chunker.feed(d))
    return out, chunker.flush()


def test_first_chunk_may_end_at_a_clause_later_ones_at_sentences():
    text = (
        "Sure thing, I can help you with that today, no problem. "
        "Which day suits you, Monday or Tuesday? Great."
    )
    deltas = [w + " " for w in text.split()]
    pieces, rest = chunk_all(deltas)
    assert pieces[0] == "Sure thing, I can help you with that today,"
    assert pieces[1] == "no problem."
    assert pieces[2] == "Which day suits you, Monday or Tuesday?"
    assert pieces[3:] == ["Great."] and rest == []


def test_short_opening_clause_waits_for_more_words():
    pieces, rest = chunk_all(["Hi, ", "there. ", "How are you?"])
    assert pieces == ["Hi, there."] and rest == ["How are you?"]


def test_an_opener_is_a_first_piece_by_itself():
    pieces, rest = chunk_all(["Sure", ",", " I", " can", " help", " you", " with", " that."])
    assert pieces == ["Sure,"] and rest == ["I can help you with that."]
    # Out as soon as its comma is, not when the next token shows the clause over.
    chunker = SentenceChunker()
    assert chunker.feed("Of") == [] and chunker.feed(" course,") == ["Of course,"]
    assert chunker.feed("1,000") == []  # later pieces end at sentences only
    pieces, _ = chunk_all(["Of ", "course, ", "let ", "me ", "check. "])
    assert pieces == ["Of course,", "let me check."]
    # Only the first piece: later openers stay inside their sentences.
    pieces, _ = chunk_all(["Sure, ", "okay. ", "Well, ", "no. "])
    assert pieces == ["Sure,", "okay.", "Well, no."]


def test_markdown_and_emoji_are_not_spoken():
    assert speakable("**Great** news 🎉! See [our plans](http://x) or `code`.") == (
        "Great news ! See our plans or code."
    )
    assert speakable("# Title\n- item one\n- item two") == "Title item one item two"
    pieces, rest = chunk_all(["😀😀 ", "**"])
    assert pieces == [] and rest == []


def test_long_run_without_punctuation_is_cut_at_a_space():
    pieces, _ = chunk_all(["word " * 100], max_chars=50)
    assert pieces and all(len(p) <= 50 for p in pieces)


def test_history_is_bounded_and_starts_with_the_user():
    history = ConversationHistory(max_messages=4)
    for i in range(5):
        history.add_user(f"u{i}")
        history.add_assistant(f"a{i}")
    messages = history.messages("SYSTEM")
    assert messages[0].role == "system" and messages[0].content == "SYSTEM"
    assert [m.content for m in messages[1:]] == ["u3", "a3", "u4", "a4"]
    history.add_user("u5")  # drops u3: the window now opens on an assistant turn
    assert history.messages("S")[1].content == "u4"
    history.add_assistant("   ")
    assert len(history) == 4


def test_heard_prefix_keeps_only_what_played():
    pieces = [("One two three four.", 4000), ("Five six.", 2000)]
    assert heard_prefix(pieces, 0) == ""
    assert heard_prefix(pieces, 2000) == "One two…"
    assert heard_prefix(pieces, 4000) == "One two three four."
    assert heard_prefix(pieces, 5000) == "One two three four. Five…"
    assert heard_prefix(pieces, 99999) == "One two three four. Five six."

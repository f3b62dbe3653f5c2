"""Is the sentence finished? A lexical reading of the transcript so far.

Pure text rules, no model: at a pause, the words heard so far say whether
the person has more to say. A sentence that trails off on a word that
cannot end one ("for", "and", "the", "my", "um", "I'd like to"), a number
or a spelling being dictated, or a subordinate clause still waiting for its
main clause means they are not done; a question, a whole clause or a short
answer means they are. Anything else is "unsure", and the caller waits as
long as it would without this reading.

The rules are word classes, not phrases: English has the fullest lists;
Spanish, French and German have their function words; any other language
is always "unsure" (the caller falls back to the fixed pause).

Transcripts come from any engine: cloud ones punctuate ("What time do you
open?", "I'd like to book…"), pocketsphinx gives bare lowercase words. Both
are read the same way; punctuation, when present, weighs more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["complete", "incomplete", "unsure"]


@dataclass(frozen=True, slots=True)
class Completion:
    verdict: Verdict
    reason: str  # which rule decided: for logs, metrics and tests


_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|\d+", re.UNICODE)

# ---- English -------------------------------------------------------------

# Words a sentence cannot end on. Not here, on purpose: words that are also
# pronouns or particles at the end of whole sentences ("I like that", "call
# her", "turn it off", "log in", "me too", "okay then").
_EN_CONJUNCTIONS = {
    "and", "or", "but", "nor", "because", "cause", "cuz", "although", "though", "if",
    "unless", "until", "till", "whereas", "whether", "than", "plus", "so",
}  # fmt: skip
_EN_PREPOSITIONS = {
    "for", "to", "of", "at", "with", "from", "into", "onto", "between", "during",
    "without", "within", "towards", "toward", "via", "per", "regarding", "including",
    "except", "upon", "like", "about", "against", "beside", "besides",
}  # fmt: skip
_EN_DETERMINERS = {
    "a", "an", "the", "my", "your", "our", "their", "its", "every", "each", "another",
    "whose",
}  # fmt: skip
# Auxiliaries, modals and contractions after which the clause must go on.
_EN_AUXILIARIES = {
    "is", "are", "was", "were", "am", "be", "been", "being", "will", "would", "shall",
    "should", "can", "could", "may", "might", "must", "do", "does", "did", "have", "has",
    "had", "i'm", "i'd", "i'll", "i've", "it's", "that's", "there's", "here's", "what's",
    "we're", "you're", "they're", "he's", "she's", "let's", "gonna", "wanna", "gotta",
    "we'd", "we'll", "you'd", "they'd", "he'd", "she'd",
}  # fmt: skip
# Verbs that announce their object: "I need", "I'd like", "I was wondering".
_EN_NEEDS_OBJECT = {
    "want", "wants", "wanted", "need", "needs", "needed", "looking", "wondering", "hoping",
    "trying", "going", "planning", "calling", "asking", "mean", "think", "thinking",
    "says", "reads", "shows", "states", "include", "includes", "including",
}  # fmt: skip
# Prepositions that end a sentence only after certain words: "turn it on",
# "I'll stop by", "the day after", "ever since"; else more is coming ("I'm
# flying to Chicago on", "I'd like to pay by"). Other particles (in, up, off,
# out, down, over) end whole sentences too often to be read as open.
_OBJECTS = {"it", "them", "me", "him", "her", "us", "this", "that", "everything", "one"}
# fmt: off
_EN_OPEN_UNLESS_AFTER: dict[str, frozenset[str]] = {
    "on": frozenset(_OBJECTS | {
        "turn", "turned", "log", "logged", "hold", "come", "go", "going", "goes", "carry",
        "switch", "switched", "put", "try", "keep", "later", "so", "move", "moving", "get",
        "sign", "signed", "hang", "right", "spot", "early", "went", "been", "stayed",
    }),
    "by": frozenset(_OBJECTS | {
        "stop", "drop", "pass", "stand", "come", "swing", "go", "went", "passed", "dropped",
        "stopped", "near", "close", "nearby", "standing", "get", "getting", "sit",
    }),
    "after": frozenset(_OBJECTS | {
        "day", "week", "month", "year", "ever", "soon", "shortly", "right", "just", "long",
        "night", "morning", "look", "looking", "looked", "take", "takes", "named",
    }),
    "since": frozenset({"ever", "long", "that"}),
}
# fmt: on
# A trailing word of this kind opens a short turn: "so basically", "actually".
_EN_DISCOURSE = {"basically", "actually", "anyway", "honestly", "literally", "like", "well"}
_EN_FILLERS = {"um", "uh", "uhm", "umm", "er", "erm", "ah", "eh", "hmm", "mm", "uhh", "ehm"}
_EN_PRONOUN_SUBJECTS = {"i", "we", "you", "they", "he", "she", "there"}
_EN_SUBORDINATORS = {
    "if", "when", "because", "although", "though", "since", "while", "unless", "before",
    "after", "once", "whenever", "whether",
}  # fmt: skip
_EN_WH_WORDS = {"what", "where", "who", "whom", "which", "how", "why", "when", "whose"}
_EN_QUESTION_STARTS = _EN_WH_WORDS | {
    "can", "could", "would", "will", "is", "are", "do", "does", "did", "should", "may",
    "have", "has", "shall", "am", "was", "were",
}  # fmt: skip
# Words that make a whole turn by themselves.
_EN_SHORT_ANSWERS = {
    "yes", "yeah", "yep", "yup", "no", "nope", "nah", "ok", "okay", "sure", "right",
    "thanks", "thank", "hello", "hi", "hey", "bye", "goodbye", "great", "perfect", "fine",
    "correct", "exactly", "absolutely", "definitely", "please", "done", "good", "cool",
    "alright", "agreed", "gotcha", "understood", "maybe", "nothing", "both", "neither",
    "tomorrow", "today", "now", "later", "morning", "afternoon", "evening", "that's",
}  # fmt: skip
# "I think so", "I hope so": a whole answer, though "so" usually goes on.
_EN_SO_ANSWERS = {"think", "hope", "guess", "believe", "suppose", "said", "told", "thought"}
# Cues that digits or letters are being read out.
_EN_DICTATION_CUES = {
    "number", "phone", "mobile", "cell", "code", "zip", "postcode", "card", "account",
    "digits", "pin", "id", "reference", "confirmation", "spell", "spelled", "spelling",
    "extension", "policy", "ticket", "booking", "is", "it's",
}  # fmt: skip
# Digits that make a whole number of that kind.
_EN_DIGITS_FOR = {
    "card": 15, "phone": 10, "mobile": 10, "cell": 10, "zip": 5, "pin": 4, "cvv": 3,
    "account": 99, "reference": 99, "confirmation": 99, "booking": 99, "order": 99,
    "policy": 99, "ticket": 99, "id": 99, "extension": 99, "code": 99,
}  # fmt: skip
_EN_DIGIT_WORDS = {
    "zero", "oh", "o", "one", "two", "three", "four", "five", "six", "seven", "eight",
    "nine",
}  # fmt: skip
_EN_NUMBER_WORDS = _EN_DIGIT_WORDS | {
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
    "eighty", "ninety", "hundred", "thousand", "double", "triple", "dash",
}  # fmt: skip
_EN_TRAILING_PHRASES = (
    ("you", "know"), ("i", "mean"), ("kind", "of"), ("sort", "of"), ("let", "me", "see"),
    ("let", "me", "think"), ("or", "something"), ("and", "stuff"), ("like", "a"),
)  # fmt: skip
_EN_OPEN_ENDINGS = (
    _EN_CONJUNCTIONS | _EN_PREPOSITIONS | _EN_DETERMINERS | _EN_AUXILIARIES | _EN_FILLERS
)

# ---- other languages: function words that cannot end a sentence ------------

_OPEN_ENDINGS: dict[str, frozenset[str]] = {
    "es": frozenset(
        "y o pero porque que si cuando donde como para por de del en con sin sobre a al "
        "el la los las un una unos unas mi mis tu tus su sus nuestro nuestra este esta "
        "ese esa es son está están era fue quiero necesito puedo me te se le lo eh este "
        "pues entonces mientras aunque hasta desde".split()
    ),
    "fr": frozenset(
        "et ou mais parce que qui si quand où comme pour par de du des en avec sans sur à au "
        "aux le la les un une mon ma mes ton ta tes son sa ses notre votre leur ce cette ces "
        "est sont était je tu il elle nous vous ils elles veux voudrais peux dois euh ben "
        "donc alors puis lorsque pendant chez vers".split()
    ),
    "de": frozenset(
        "und oder aber weil dass wenn als wie ob für von mit ohne auf an in im zu zum zur "
        "bei nach aus über unter der die das den dem des ein eine einen einem einer mein "
        "meine dein deine sein seine unser ihr ist sind war bin ich du er sie wir möchte "
        "will kann muss äh ähm also dann bis seit während denn sondern".split()
    ),
}


# The languages with rules; any other is always "unsure".
LANGUAGES: frozenset[str] = frozenset({"en", *_OPEN_ENDINGS})


def words_of(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD_RE.findall(text)]


def _language(language: str | None) -> str:
    return (language or "en").split("-")[0].split("_")[0].lower() or "en"


def completion(text: str, language: str | None = "en") -> Completion:
    """Whether ``text`` (the transcript so far) reads as a finished turn."""
    stripped = text.strip()
    words = words_of(stripped)
    if not words:
        return Completion("unsure", "no words")
    lang = _language(language)
    tail = stripped[-3:]
    # A trailing ellipsis or dash: the engine heard the voice trail off.
    if stripped.endswith(("...", "…", "—", "-", ",", ";", ":")):
        return Completion("incomplete", f"ends with {tail.strip()!r}")
    if lang != "en":
        open_endings = _OPEN_ENDINGS.get(lang)
        if open_endings is None:
            return Completion("unsure", f"no rules for {lang!r}")
        if words[-1] in open_endings:
            return Completion("incomplete", f"ends on {words[-1]!r}")
        if stripped.endswith(("?", "¿", "!", ".")) or len(words) >= 3:
            return Completion("complete", "a whole clause")
        return Completion("unsure", "too short to tell")
    return _english(stripped, words)


def _english(text: str, words: list[str]) -> Completion:
    last, first, n = words[-1], words[0], len(words)
    if any(tuple(words[-len(p) :]) == p for p in _EN_TRAILING_PHRASES):
        return Completion("incomplete", "trails off")
    if (dictation := _dictation(words)) is not None:
        return dictation
    if last in _EN_FILLERS:
        return Completion("incomplete", f"hesitation {last!r}")
    if text.endswith("?"):
        return Completion("complete", "a question")
    if n <= 3 and all(w in _EN_SHORT_ANSWERS or w in _EN_PRONOUN_SUBJECTS for w in words):
        return Completion("complete", "a short answer")
    if last == "so" and n >= 2 and words[-2] in _EN_SO_ANSWERS:
        return Completion("complete", "a short answer")
    # "Yes I do", "I can", "we will": a pronoun and an auxiliary answer a question.
    if 2 <= n <= 3 and words[-2] in _EN_PRONOUN_SUBJECTS | {"it", "that"} and "'" not in last:
        if last in _EN_AUXILIARIES:
            return Completion("complete", "a short answer")
    # "What are you looking for", "who do I talk to": a question's stranded word.
    stranded = last in _EN_PREPOSITIONS or last in _EN_NEEDS_OBJECT or last in _EN_AUXILIARIES
    if first in _EN_WH_WORDS and n >= 3 and stranded and last not in _EN_DETERMINERS:
        return Completion("complete", "a question")
    if last in _EN_OPEN_ENDINGS:
        return Completion("incomplete", f"ends on {last!r}")
    if (
        last in _EN_OPEN_UNLESS_AFTER
        and words[-2:-1] != []
        and (words[-2] not in _EN_OPEN_UNLESS_AFTER[last])
    ):
        return Completion("incomplete", f"ends on {last!r}")
    if last in _EN_DISCOURSE and n <= 3 and first not in _EN_SHORT_ANSWERS:
        return Completion("incomplete", f"a starter {last!r}")
    if last in _EN_PRONOUN_SUBJECTS:
        return Completion("incomplete", f"a subject {last!r} with no verb")
    if last in _EN_NEEDS_OBJECT and first not in _EN_QUESTION_STARTS:
        return Completion("incomplete", f"{last!r} still needs its object")
    if first in _EN_SUBORDINATORS and not _has_main_clause(text, words):
        return Completion("incomplete", "a subordinate clause with no main clause")
    if text.endswith((".", "!")):
        return Completion("complete", "a finished sentence")
    if n >= 3 or (n == 2 and "'" in first):  # "that's all", "I'm fine"
        return Completion("complete", "a whole clause")
    if first in _EN_QUESTION_STARTS and n >= 2:
        return Completion("complete", "a short question")
    return Completion("unsure", "too short to tell")


def _has_main_clause(text: str, words: list[str]) -> bool:
    """'If I book today, do I get a discount' has one; 'if I book today' not."""
    if "then" in words[1:]:
        return True
    if "," in text:
        return len(words_of(text.rsplit(",", 1)[-1])) >= 2
    return False


def _dictation(words: list[str]) -> Completion | None:
    """Digits or letters being read out: more may follow after each pause."""
    run: list[str] = []
    for word in reversed(words):
        spelled = len(word) == 1 and word.isalpha() and word not in ("a", "i")
        if word.isdigit() or word in _EN_NUMBER_WORDS or spelled:
            run.append(word)
        else:
            break
    if not run:
        return None
    before = words[: len(words) - len(run)]
    cued = any(w in _EN_DICTATION_CUES for w in before)
    if not cued and len(run) < 3:
        return None  # "I need two", "at 5": a number, not a dictation
    digits = sum(len(w) if w.isdigit() else w in _EN_DIGIT_WORDS for w in run)
    letters = sum(1 for w in run if len(w) == 1 and w.isalpha() and w not in _EN_DIGIT_WORDS)
    if letters > digits:
        return Completion("incomplete", "spelling out letters")
    # How many digits make the whole thing: a card 15-16, a phone number 10
    # (or 11 with the country code), a zip 5, a PIN 4. A code with no fixed
    # length (a reference, an account) is never known to be whole: wait.
    lengths = [_EN_DIGITS_FOR[w] for w in before if w in _EN_DIGITS_FOR]
    needed = max(lengths) if lengths else (10 if cued else None)
    if needed is not None and digits >= needed:
        return Completion("complete", f"all {digits} digits")
    return Completion("incomplete", f"dictating digits ({digits} so far)")

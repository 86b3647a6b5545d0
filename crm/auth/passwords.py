"""What a staff password must be: 10 to 128 characters, and not easy to guess.

Guessability is zxcvbn's estimate (Dropbox's checker: common-password lists, words,
names, keyboard walks, repeats, sequences, dates, and the person's own details). We ask
for its score 3, "safely unguessable" against online attacks and slowed offline ones,
and say in the person's language which weakness it found."""

import threading
from collections.abc import Iterable

from flask_babel import lazy_gettext as _l
from zxcvbn import zxcvbn

PASSWORD_MIN = 10
PASSWORD_MAX = 128
MIN_SCORE = 3

# Why a password is refused, by the kind of weakness zxcvbn found in it.
WEAKNESS = {
    "personal": _l("Too easy to guess: it contains your email, your name or your organisation's name."),
    "common": _l("Too easy to guess: it is one of the most used passwords."),
    "repeat": _l('Too easy to guess: it repeats characters or words, like "aaaa" or "abcabc".'),
    "sequence": _l('Too easy to guess: it is a sequence, like "abcdef" or "123456".'),
    "spatial": _l('Too easy to guess: it is a keyboard pattern, like "qwerty" or "asdfgh".'),
    "date": _l("Too easy to guess: it is mostly a date or a year."),
    "words": _l("Too easy to guess: it is a common word or name, with little added."),
    "short": _l("Too easy to guess: it is short and simple."),
}
ADVICE = _l("A few unrelated words make a strong password that is easy to remember.")

# zxcvbn keeps the person's own words in a module-level dictionary while it checks.
_checking = threading.Lock()


def _kind(match: dict) -> str | None:
    pattern = match["pattern"]
    if pattern == "dictionary":
        if match.get("dictionary_name") == "user_inputs":
            return "personal"
        return "common" if match.get("dictionary_name") == "passwords" else "words"
    if pattern in ("repeat", "sequence", "spatial", "date"):
        return pattern
    if pattern == "regex":  # recent years
        return "date"
    return None


def weakness(password: str, personal: Iterable[str] = ()) -> str | None:
    """Why ``password`` is too easy to guess, or None if it is not; ``personal`` holds
    words of the person it is for (email, name, organisation)."""
    with _checking:
        result = zxcvbn(password, user_inputs=[word for word in personal if word], max_length=PASSWORD_MAX)
    if result["score"] >= MIN_SCORE:
        return None
    # The weakness covering most of the password is the one to name.
    found = [(len(match["token"]), _kind(match)) for match in result["sequence"]]
    found = [(length, kind) for length, kind in found if kind is not None]
    if any(kind == "personal" for _length, kind in found):
        kind = "personal"
    else:
        kind = max(found)[1] if found else "short"
    return f"{WEAKNESS[kind]} {ADVICE}"

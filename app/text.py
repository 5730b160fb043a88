"""What text the application accepts from outside, in one place.

Every text value may hold anything except a NUL (PostgreSQL cannot store one)
and a lone surrogate (no encoding can write one). A value that goes into an
email header or names a row (``to``, ``subject``, ids, query values) also refuses
every control and line-separator character: Python's ``str.splitlines`` (and
so the ``email`` package when it folds a header) breaks lines on \\x0b, \\x0c,
\\x1c-\\x1e, \\x85, \\u2028 and \\u2029 as well as on CR and LF.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (\x85 among them) and the two Unicode line/paragraph separators.
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The same set as a JSON-schema pattern, for the OpenAPI document.
SINGLE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
NO_NUL_PATTERN = r"^[^\u0000]*$"


# A Python string holds a surrogate only unpaired (JSON's "\\ud800" decodes to one).
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def storable(value: str) -> bool:
    """No NUL and no lone surrogate: safe to store and to encode."""
    return "\x00" not in value and not has_lone_surrogate(value)


def single_line(value: str) -> bool:
    """Storable, and without any character that could start a new header line."""
    return storable(value) and _LINE_BREAKING.search(value) is None


def made_storable(value: str, limit: int | None = None) -> str:
    """``value`` without NULs and lone surrogates, cut to ``limit`` characters:
    what a worker writes about an attempt (an SMTP server's reply, an exception's
    text) must never be what stops the write."""
    cleaned = _SURROGATE.sub("", value.replace("\x00", ""))
    return cleaned if limit is None else cleaned[:limit]


def storable_json(value):
    """``value`` (a job's result) with every string in it made storable."""
    if isinstance(value, str):
        return made_storable(value)
    if isinstance(value, dict):
        return {made_storable(str(key)): storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item) for item in value]
    return value


def printable(value: str, limit: int = 500) -> str:
    """``value`` for one line of a terminal: control characters (escape codes among
    them) shown as ``?``, cut to ``limit`` characters."""
    return _LINE_BREAKING.sub("?", value)[:limit]

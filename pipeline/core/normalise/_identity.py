"""The identity rule and the id rules of docs/contract.md ("Rules for every provider").

A `message_key` is built from identity components: each is trimmed, and one that is missing,
empty or longer than 256 bytes makes its report invalid (never two reports under one made-up
key). Ids (`message_id`, `batch_id`, `client_ref`) are trimmed too, empty means absent, and an
id given as a number is its decimal text (`9527`, `9527.0` and `"9527"` are one id).
"""

from __future__ import annotations

from typing import Final

from ...errors import MalformedBody

#: The longest identity component, in UTF-8 bytes.
MAX_KEY_PART_BYTES: Final = 256
#: Text of at most this many characters cannot exceed the byte limit (4 bytes a code point).
_SURELY_SHORT: Final = MAX_KEY_PART_BYTES // 4


def _number_text(value: object, what: str) -> str:
    """The decimal text of an integral JSON number; a boolean or a fraction is no id."""
    if type(value) is int:
        return str(value)
    if type(value) is float and value.is_integer():
        return str(int(value))
    raise MalformedBody(f"{what} is not an id: {str(value)[:40]}")


# The functions below run several times per report: each takes the common case (text, or a
# JSON integer) in its first lines, without a call of its own (a Python call costs more than
# the checks it would share).


def key_part(value: object, what: str) -> str:
    """`value` as an identity component: trimmed text, or a number's decimal text.

    MalformedBody naming `what` when it is missing, empty, too long or not an id.
    """
    if type(value) is str:
        text = value.strip()
        if text and len(text) <= 64:  # _SURELY_SHORT, as a constant
            return text
    elif type(value) is int:
        text = str(value)
    elif value is None:
        raise MalformedBody(f"{what} is missing")
    else:
        text = _number_text(value, what)
    if not text:
        raise MalformedBody(f"{what} is empty")
    if len(text) > _SURELY_SHORT and len(text.encode()) > MAX_KEY_PART_BYTES:
        raise MalformedBody(f"{what} is longer than {MAX_KEY_PART_BYTES} bytes")
    return text


def id_or_none(value: object, what: str = "id") -> str | None:
    """An id as trimmed text; None when absent, empty or whitespace only."""
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    return _number_text(value, what)


def text_or_none(value: str | None) -> str | None:
    """Free text verbatim; None when absent, empty or whitespace only."""
    return value if value and not value.isspace() else None


def code_or_none(value: int | str | None) -> str | None:
    """A provider code verbatim (a number as its decimal text); None when absent, empty or
    whitespace only."""
    if type(value) is str:
        return value if value and not value.isspace() else None
    return None if value is None else str(value)

"""The lenient integer and boolean readers (docs/contract.md, "Rules for every provider").

An integer field accepts a JSON integer, a JSON number with an integral value, or a string
holding a decimal integer (surrounding whitespace allowed); a boolean field `true`/`false`,
`1`/`0` and those as strings, in any case, surrounding whitespace allowed. Anything else is
MalformedBody naming the field. The common case (the JSON type itself) returns at once.
"""

from __future__ import annotations

import re
from typing import Final

from ...errors import MalformedBody

NumberValue = int | float | str | bool
_DECIMAL = re.compile(r"\s*([+-]?\d{1,30})\s*", re.ASCII)
_BOOLEANS: Final[dict[str, bool]] = {"true": True, "false": False, "1": True, "0": False}


def integer(value: NumberValue | None, what: str) -> int | None:
    """An integer field: None when absent (null)."""
    if type(value) is int or value is None:
        return value
    if type(value) is float:
        if value.is_integer():
            return int(value)
    elif type(value) is str:
        found = _DECIMAL.fullmatch(value)
        if found is not None:
            return int(found[1])
    raise MalformedBody(f"{what} is not an integer: {str(value)[:40]!r}")


def boolean(value: NumberValue | None, what: str) -> bool | None:
    """A boolean field: None when absent (null) or an empty string."""
    if type(value) is bool or value is None:
        return value
    if type(value) is int or type(value) is float:
        if value in (0, 1):
            return value == 1
    elif type(value) is str:
        text = value.strip().lower()
        if not text:
            return None
        found = _BOOLEANS.get(text)
        if found is not None:
            return found
    raise MalformedBody(f"{what} is not a boolean: {str(value)[:40]!r}")

"""The phone number normaliser: `recipient` from `recipient_raw` (docs/contract.md, "Phone
numbers").

1. Clean: Unicode digits become ASCII (NFKC, then any decimal digit NFKC leaves), a `(0)` trunk
   marker after `+` and the country code is dropped, whitespace, `-`, `.`, `/`, `(`, `)` go.
2. A leading `00` or `+00` becomes `+`.
3. `+` then digits is kept.
4. A separate country code (`+`/`00` stripped, 1-3 digits starting 1-9, else ignored): one
   national `0` is stripped from the number; a number that already begins with the code and
   is valid as it stands (libphonenumber decides) is not prefixed twice; else `+` code number.
5. The provider's rule for bare digits (`NationalRule`).
6. The result is `recipient` only if it is E.164 (`+` and 8-15 digits, the first 1-9); else the
   trimmed raw value.

The common values (`+` and digits, bare digits) take a fast path; only the rest are cleaned,
and libphonenumber is consulted only for a number that begins with its own country code.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

#: A provider's rule for bare ASCII digits: the number in E.164, or None. `recipient` trusts
#: its answer: a rule returns nothing else.
NationalRule = Callable[[str], str | None]

_SPACING = re.compile(r"[\s\-./]+")  # separators but the parentheses of a trunk marker
_PARENTHESES = re.compile(r"[()]")
_TRUNK_MARKER = re.compile(r"^\+(\d{1,3})\(0\)", re.ASCII)
_COUNTRY_CODE = re.compile(r"[1-9]\d{0,2}", re.ASCII)


def _is_e164(number: str) -> bool:
    """`+` and 8-15 ASCII digits, the first 1-9."""
    return 9 <= len(number) <= 16 and number[1] != "0" and number[1:].isdigit()


def national_cn(digits: str) -> str | None:
    """Yunpian and Tencent: a mainland China mobile `1[3-9]` + 9 digits, bare or after `86`."""
    if len(digits) == 11 and digits[0] == "1" and digits[1] >= "3":
        return "+86" + digits
    if len(digits) == 13 and digits[:3] == "861" and digits[3] >= "3":
        return "+" + digits
    return None


def national_with_cc(digits: str) -> str | None:
    """uSpeedo numbers carry their country code without the `+`."""
    return "+" + digits if digits[0] != "0" and 8 <= len(digits) <= 15 else None


def national_fr(digits: str) -> str | None:
    """SMS Partner national numbers `0[1-9]` + 8 digits are French."""
    if len(digits) == 10 and digits[0] == "0" and digits[1] != "0":
        return "+33" + digits[1:]
    return None


def recipient(
    raw: str, country_code: str | None = None, national: NationalRule | None = None
) -> str:
    """The recipient in E.164 by the rules above, else the trimmed raw value."""
    # The fast paths test E.164 inline (a call of its own would cost more than the checks: this
    # runs once per report), and trust a national rule's answer (see `NationalRule`).
    if raw.isascii():
        if raw.isdigit() and raw[0] != "0":
            if country_code is None:
                # Bare digits: the national rule's number, else `raw` itself (rules 5 and 6).
                # The commonest rules' common cases inline: no call per report.
                if national is national_with_cc:
                    return "+" + raw if 8 <= len(raw) <= 15 else raw
                if national is national_cn and len(raw) == 11 and raw[0] == "1" and raw[1] >= "3":
                    return "+86" + raw
                return raw if national is None else national(raw) or raw
            if (
                0 < len(country_code) <= 3
                and country_code.isdigit()
                and country_code[0] != "0"
                and not raw.startswith(country_code)
                # `+`, the code and `raw`, all digits, the first 1-9: E.164 by its length.
                and 8 <= len(raw) + len(country_code) <= 15
            ):
                return "+" + country_code + raw
        elif raw[:1] == "+" and 9 <= len(raw) <= 16 and raw[1] != "0" and raw[1:].isdigit():
            return raw
    return _slow(raw, country_code, national)


@lru_cache(maxsize=65536)
def _slow(raw: str, country_code: str | None, national: NationalRule | None) -> str:
    trimmed = raw.strip()
    number = _clean(trimmed)
    if number[:3] == "+00":
        number = "+" + number[3:]
    elif number[:2] == "00":
        number = "+" + number[2:]
    if number[:1] == "+":
        return number if _is_e164(number) else trimmed
    if not (number.isascii() and number.isdigit()):
        return trimmed
    code = _code(country_code)
    if code is not None:
        number = _with_code(number[1:] if number[0] == "0" else number, code)
    elif national is not None:
        number = national(number) or number
    return number if number[:1] == "+" and _is_e164(number) else trimmed


def _clean(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        if not text.isascii():
            text = "".join(_ascii_digit(c) for c in text)
    text = _TRUNK_MARKER.sub(r"+\1", _SPACING.sub("", text))
    return _PARENTHESES.sub("", text)


def _ascii_digit(char: str) -> str:
    digit = unicodedata.decimal(char, None)
    return char if digit is None else str(digit)


def _code(country_code: str | None) -> str | None:
    """A separate country code: `+` or `00` stripped; None unless 1-3 digits starting 1-9."""
    if country_code is None:
        return None
    code = country_code.strip()
    code = code[1:] if code[:1] == "+" else code[2:] if code[:2] == "00" else code
    return code if _COUNTRY_CODE.fullmatch(code) else None


def _with_code(number: str, code: str) -> str:
    if number.startswith(code) and _valid_international("+" + number):
        return "+" + number
    return "+" + code + number


@lru_cache(maxsize=4096)
def _valid_international(number: str) -> bool:
    """libphonenumber's verdict on `number` read as international (its metadata decides)."""
    import phonenumbers  # only here: most numbers never need it, and the import is heavy

    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, None)))
    except phonenumbers.NumberParseException:
        return False

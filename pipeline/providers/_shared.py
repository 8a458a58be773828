"""What every provider module uses: typed JSON decoding that fails only with our errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from ..normalise._errors import MalformedBody

T = TypeVar("T")


def decode_json(decoder: msgspec.json.Decoder[T], body: bytes | str, what: str) -> T:
    """Decode `body` with a reusable typed decoder; any failure is MalformedBody naming `what`.

    msgspec reports bad UTF-8 as UnicodeDecodeError and deep nesting as RecursionError, so those
    are caught too: no input may escape as anything but a DecodeError.
    """
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise MalformedBody(f"{what}: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise MalformedBody(f"{what}: invalid JSON: {exc}") from None


#: Top-level keys sit at the start of real bodies: this much decides the shape of most.
SNIFF_HEAD = 512


def sniff_head_first(
    body: bytes, sniff: Callable[[bytes], str | None], undecided: tuple[str | None, ...] = (None,)
) -> str | None:
    """`sniff` on the head of the body, and on the whole body only when the head cannot decide
    (a regex scan of a large body costs microseconds; most bodies are decided by their head)."""
    found = sniff(body[:SNIFF_HEAD])
    return sniff(body) if found in undecided and len(body) > SNIFF_HEAD else found


def id_text(value: int | str | None) -> str | None:
    """Ids arrive as numbers or strings; events carry them as exact strings."""
    return None if value is None else value if isinstance(value, str) else str(value)

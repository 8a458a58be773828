"""What every provider module uses: typed JSON decoding that fails only with our errors."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from .._errors import MalformedBody

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


def id_text(value: int | str | None) -> str | None:
    """Ids arrive as numbers or strings; events carry them as exact strings."""
    return None if value is None else value if isinstance(value, str) else str(value)

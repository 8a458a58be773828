"""What every provider module uses: typed JSON decoding that fails only with our errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from schemas import ReceiptEvent

from ...errors import DecodeError, MalformedBody, NotReceipts, PartialBody
from ..normalise import RecordContext
from ._partial import reasons

T = TypeVar("T")


def decode_json(decoder: msgspec.json.Decoder[T], body: bytes | str, what: str) -> T:
    """Decode `body` with a reusable typed decoder; any failure is MalformedBody naming `what`.

    msgspec reports bad UTF-8 as UnicodeDecodeError and deep nesting as RecursionError, so those
    are caught too: no input may escape as anything but a DecodeError. msgspec does not validate
    the UTF-8 of fields it skips (unknown keys, ignored values), so a non-ASCII body is validated
    whole first: `isascii` is a word-at-a-time scan, and the UTF-8 check runs in C only when
    needed.
    """
    try:
        if type(body) is bytes and not body.isascii():
            body.decode()
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


Decode = Callable[[bytes, str, RecordContext], list[ReceiptEvent]]
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_ENCODE = msgspec.json.Encoder().encode
#: A step of a report-list path that stands for every item of a list (uSpeedo's sessions).
EACH = "*"


def by_report(
    decode: Decode,
    body: bytes,
    endpoint: str,
    ctx: RecordContext,
    lists: Sequence[tuple[str, ...]],
) -> list[ReceiptEvent]:
    """`decode(body)`, and when it fails as MalformedBody, the body report by report.

    The fast path is the provider's own typed decode of the whole body. Only when that fails is
    the body cut into one body per report (the report list at the first path of `lists` that the
    body has, holding just that report; see `split_reports`), each decoded by the same `decode`:
    valid reports are returned inside a PartialBody naming the failing positions. A body whose
    reports all fail, or whose failure lies outside its reports, keeps its original error.
    """
    try:
        return decode(body, endpoint, ctx)
    except MalformedBody:
        if not _utf8(body):
            raise  # a corrupted body, not one bad report
        bodies = split_reports(body, lists)
        if bodies is None or len(bodies) < 2:
            raise
        events: list[ReceiptEvent] = []
        failed: list[tuple[int, str]] = []
        replace = msgspec.structs.replace
        for index, one in enumerate(bodies):
            try:
                got = decode(one, endpoint, ctx)
            except NotReceipts:
                continue  # a non-receipt item (a Tencent reply) counts in the positions only
            except DecodeError as exc:
                # Decoded alone, the report was item 0 of its list: name its place in the body.
                failed.append((index, str(exc).replace("[0]", f"[{index}]", 1)))
                continue
            events += [replace(e, source=replace(e.source, index=index)) for e in got]
        if not events or not failed:
            raise
        raise PartialBody(
            reasons(failed, len(bodies)), events, tuple(i for i, _ in failed)
        ) from None


def _utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def split_reports(body: bytes, lists: Sequence[tuple[str, ...]]) -> list[bytes] | None:
    """One JSON body per report, or None when no path of `lists` leads to a list in `body`.

    A path is the object keys down to the report list (`EACH` steps into every item of a list);
    each body is `body` with that list holding one report, everything else as it was.
    """
    for path in lists:
        try:
            bodies = _split(body, path)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
            continue
        if bodies is not None:
            return bodies
    return None


def _split(body: bytes, path: tuple[str, ...]) -> list[bytes] | None:
    if not path:
        return [b"[" + bytes(item) + b"]" for item in _RAW_LIST.decode(body)]
    step, rest = path[0], path[1:]
    if step == EACH:
        items = _RAW_LIST.decode(body)
        out: list[bytes] = []
        for item in items:
            inner = _split(bytes(item), rest)
            if inner is None:
                return None
            out += [b"[" + one + b"]" for one in inner]
        return out
    obj = _RAW_OBJECT.decode(body)
    inner_raw = obj.get(step)
    if inner_raw is None:
        return None
    inner = _split(bytes(inner_raw), rest)
    if inner is None:
        return None
    return [_RAW_ENCODE({**obj, step: msgspec.Raw(one)}) for one in inner]

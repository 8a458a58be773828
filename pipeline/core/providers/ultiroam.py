"""Ultiroam GSM gateway: `query_sms_result` poll and `sms_result` / `sms_deliver_status` pushes
(Ultiroam's API documentation).

All forms decode with one struct; the receipt key present in the body picks the form, so a
generic `push` header is enough. `time` is the gateway-local *send* time: it gives `sent_at`,
never `occurred_at`. Other pushes on the same URL (`sms`, `ussd`, ...) are skipped as NotReceipts.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from schemas import Channel, ReceiptEvent, Status
from schemas.ultiroam import (
    UltiroamBody,
    UltiroamDeliverStatus,
    UltiroamHead,
    UltiroamResult,
)

from ...errors import DecodeError, MalformedBody, NotReceipts, ProviderError, UnknownFormat
from ..normalise import (
    Lookup,
    RecordContext,
    id_or_none,
    integer,
    key_part,
    key_time,
    make_event,
    map_status,
    parse_time,
    recipient,
)
from ._shared import by_report, decode_json, sniff_head_first

PROVIDER: Final = "ultiroam"
ENDPOINTS: Final = ("query_sms_result", "sms_result", "sms_deliver_status")
DEFAULT_TZ: Final = "UTC"  # a gateway's local time: operators must configure the real zone

# Header values accepted as `endpoint`; the body's receipt key then picks the form.
_ALIASES: Final = frozenset({*ENDPOINTS, "poll", "push", "callback"})
_RECEIPT_KEYS: Final = frozenset({"result", "sms_result", "sms_deliver_status"})

_BODY = msgspec.json.Decoder(UltiroamBody)
_HEAD = msgspec.json.Decoder(UltiroamHead)
_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw])

_STATUS: Final = Lookup[Status](
    {
        "SENDING": "PENDING",
        "SENT_OK": "SENT",
        "DELIVERED": "DELIVERED",
        "FAILED": "FAILED",
    }
)


def _tp_status(code: int) -> Status:
    """GSM 03.40 TP-Status ranges: completed, still trying, permanent error, temporary error
    given up; 128-255 are reserved/SC-specific, read as a permanent failure."""
    if code < 32:
        return "DELIVERED"
    if code < 64:
        return "SENT"
    if code < 96:
        return "UNDELIVERED"
    if code < 128:
        return "EXPIRED"
    return "UNDELIVERED"


_TP_STATUS: Final[tuple[Status, ...]] = tuple(_tp_status(c) for c in range(256))
_TP_TEXT: Final[tuple[str, ...]] = tuple(str(c) for c in range(256))
_NO_TP_STATUS: Final = Lookup[Status]({})
_ERRORS: Final[dict[str, str]] = {
    "400": "request format is not valid",
    "413": "more than 32 numbers",
    "500": "other error",
}
#: The non-receipt pushes that are counted by name; any other key counts as `ultiroam.other`,
#: so a hostile first key never mints a metric label.
_SKIPPED: Final = {"sms": "ultiroam.sms", "ussd": "ultiroam.ussd"}
SKIP_KINDS: Final = frozenset({*_SKIPPED.values(), "ultiroam.other"})
#: Where the report list of each form sits, for decoding report by report.
_REPORT_LISTS: Final = (("result",), ("sms_result",), ("sms_deliver_status",))

# A quoted name followed by a colon can only be a JSON key (a quote inside a string is escaped).
# Lower-case `sn`, `error_code`, `sms_result`, `sms_deliver_status` exist only here: uSpeedo's
# keys are capitalised (`RetCode`, `MsgType`, `SessionNo`), SMS Partner uses `success`/`code`,
# Tencent `Response`/`report_status`/`sid`, Yunpian is a form body. `result` counts only with `sn`.
_OBJECT = re.compile(rb"\s*\{")
_SN_KEY = re.compile(rb'"sn"\s*:')
_ERROR_KEY = re.compile(rb'"error_code"\s*:')
_DELIVER_KEY = re.compile(rb'"sms_deliver_status"\s*:')
_SMS_RESULT_KEY = re.compile(rb'"sms_result"\s*:')
_RESULT_KEY = re.compile(rb'"result"\s*:')


def sniff(body: bytes) -> str | None:
    # `push` is no decision: a receipt key may follow a long unknown field.
    return sniff_head_first(body, _sniff, (None, "push"))


def _sniff(body: bytes) -> str | None:
    if not _OBJECT.match(body):
        return None
    if b'"sms_deliver_status"' in body and _DELIVER_KEY.search(body):
        return "sms_deliver_status"
    if b'"sms_result"' in body and _SMS_RESULT_KEY.search(body):
        return "sms_result"
    if b'"error_code"' in body and _ERROR_KEY.search(body):
        return "query_sms_result"
    if b'"sn"' in body and _SN_KEY.search(body):
        return "query_sms_result" if b'"result"' in body and _RESULT_KEY.search(body) else "push"
    return None


def _provider_error(code: int | float | str) -> ProviderError:
    text = str(code)[:20]
    return ProviderError(f"ultiroam error_code {text}: {_ERRORS.get(text, 'error')}")


def _error_code(body: bytes) -> int | float | str | None:
    try:
        return _HEAD.decode(body).error_code
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
        return None


def _read(body: bytes) -> UltiroamBody:
    try:
        return decode_json(_BODY, body, "ultiroam body")
    except MalformedBody:
        # An error answer may carry anything else; its error_code still decides the class.
        code = _error_code(body)
        if code is not None and code not in (200, "200", 200.0):
            raise _provider_error(code) from None
        raise


def _not_receipts(body: bytes) -> DecodeError | NotReceipts:
    """Why a body with no receipt list is skipped (another push kind) or rejected."""
    keys = decode_json(_KEYS, body, "ultiroam body")
    if "error_code" in keys:
        return MalformedBody("ultiroam query_sms_result answer has no result")
    if "sn" not in keys:
        return MalformedBody("ultiroam body has neither sn nor a receipt list")
    for key in keys:
        if key in _RECEIPT_KEYS:
            return MalformedBody(f"ultiroam {key} is null")
        if key != "sn":
            return NotReceipts(_SKIPPED.get(key, "ultiroam.other"))
    return NotReceipts("ultiroam.other")


def _results(
    items: list[UltiroamResult], sn: str, endpoint: str, ctx: RecordContext
) -> list[ReceiptEvent]:
    channel: Channel = "poll" if endpoint == "ultiroam.query_sms_result" else "push"
    zone = ctx.tz or DEFAULT_TZ
    events = []
    for index, r in enumerate(items):
        # key_part's common case inline (a call costs more than its checks); the rule otherwise.
        n = r.number
        to = recipient(
            t if type(n) is str and 0 < len(t := n.strip()) <= 64 else key_part(n, "number")
        )
        sent_at, _, time_zone = parse_time(r.time, zone, PROVIDER)
        events.append(
            make_event(
                ctx,
                PROVIDER,  # provider
                channel,
                endpoint,
                index,
                sn,  # account
                _key(sn, r.port, to, r.ref_id, r.time),  # message_key
                None,  # message_id
                None,  # batch_id
                str(u) if type(u := r.user_id) is int else id_or_none(u, "user_id"),  # client_ref
                to,  # recipient
                r.number or "",  # recipient_raw
                _STATUS.get(r.status) or map_status(PROVIDER, _STATUS, r.status),  # status
                r.status,  # provider_status
                None,  # provider_code
                None,  # provider_message
                # The common shapes inline (a call costs more than the check); the rule otherwise.
                c if type(c := r.count) is int else integer(c, "count"),  # segments
                k if type(k := r.succ_count) is int else integer(k, "succ_count"),  # segments_ok
                None,  # opt_out
                None,  # occurred_at
                None,  # occurred_at_raw
                sent_at,
                time_zone,
            )
        )
    return events


def _deliveries(
    items: list[UltiroamDeliverStatus], sn: str, ctx: RecordContext
) -> list[ReceiptEvent]:
    zone = ctx.tz or DEFAULT_TZ
    events = []
    for index, r in enumerate(items):
        code = c if type(c := r.status_code) is int else integer(c, "status_code")
        assert code is not None  # a required field
        if 0 <= code <= 255:
            status, text = _TP_STATUS[code], _TP_TEXT[code]
        else:  # not a TP-Status: unmapped, kept raw and counted (docs/contract.md)
            text = str(code)
            status = map_status(PROVIDER, _NO_TP_STATUS, text)
        n = r.number
        to = recipient(
            t if type(n) is str and 0 < len(t := n.strip()) <= 64 else key_part(n, "number")
        )
        sent_at, _, time_zone = parse_time(r.time, zone, PROVIDER)
        events.append(
            make_event(
                ctx,
                PROVIDER,  # provider
                "push",  # channel
                "ultiroam.sms_deliver_status",  # endpoint
                index,
                sn,  # account
                _key(sn, r.port, to, r.ref_id, r.time),  # message_key
                None,  # message_id
                None,  # batch_id
                None,  # client_ref
                to,  # recipient
                r.number or "",  # recipient_raw
                status,
                text,  # provider_status
                text,  # provider_code
                None,  # provider_message
                None,  # segments
                None,  # segments_ok
                None,  # opt_out
                None,  # occurred_at
                None,  # occurred_at_raw
                sent_at,
                time_zone,
            )
        )
    return events


def _key(sn: str, port: object, to: str, ref_id: object, time: int | float | str | None) -> str:
    """`sn|port|recipient|ref_id|time`, the time in its canonical form (one key for the push
    and the poll of one SMS, however each writes the time)."""
    # Both are JSON integers in practice: key_part's integer case inline (a call costs more).
    p = str(port) if type(port) is int else ""
    port_text = p if 0 < len(p) <= 64 else key_part(port, "port")
    r = str(ref_id) if type(ref_id) is int else ""
    ref_text = r if 0 < len(r) <= 64 else key_part(ref_id, "ref_id")
    return f"{sn}|{port_text}|{to}|{ref_text}|{key_time(time, 'time')}"


def decode(body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    return by_report(_decode, body, endpoint, ctx, _REPORT_LISTS)


def _decode(body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    if endpoint not in _ALIASES:
        raise UnknownFormat(f"ultiroam has no endpoint {endpoint!r}")
    b = _read(body)
    error_code = integer(b.error_code, "error_code")
    if error_code is not None and error_code != 200:
        raise _provider_error(error_code)
    if b.result is None and b.sms_result is None and b.sms_deliver_status is None:
        raise _not_receipts(body)
    if b.sn is None:
        raise MalformedBody("ultiroam receipts without sn")
    sn = key_part(b.sn, "sn")
    if b.result is not None:
        return _results(b.result, sn, "ultiroam.query_sms_result", ctx)
    if b.sms_result is not None:
        return _results(b.sms_result, sn, "ultiroam.sms_result", ctx)
    assert b.sms_deliver_status is not None
    return _deliveries(b.sms_deliver_status, sn, ctx)

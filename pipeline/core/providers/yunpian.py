"""Yunpian push: `sms_status=<url-encoded JSON array>` form bodies.

Some senders URL-encode the array twice, so the value is decoded until it is JSON.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Final

import msgspec

from schemas import ReceiptEvent, Status
from schemas.yunpian import YunpianReport

from ...errors import MalformedBody, UnknownFormat
from ..normalise import (
    Lookup,
    RecordContext,
    id_or_none,
    key_part,
    make_event,
    map_status,
    national_cn,
    parse_time,
    recipient,
)
from ._shared import by_report, decode_json

PROVIDER: Final = "yunpian"
ENDPOINTS: Final = ("push",)
DEFAULT_TZ: Final = "Asia/Shanghai"

_FIELD = b"sms_status="
_ENDPOINT: Final = "yunpian.push"
_DECODER = msgspec.json.Decoder(list[YunpianReport])
_STATUS: Final = Lookup[Status](
    {"SUCCESS": "DELIVERED", "FAIL": "UNDELIVERED", "UNKNOWN": "UNKNOWN"}
)
_FAIL_BY_CODE: Final = Lookup[Status]({"EXPIRED": "EXPIRED", "REJECTD": "REJECTED"})
_SETTLED: Final = _STATUS.settled("UNDELIVERED")
# Double encoding is the worst seen in the wild; more rounds would only hide garbage.
_MAX_ROUNDS = 3
SKIP_KINDS: Final = frozenset[str]()
#: A `%` not followed by two hex digits: form decoding keeps it literally.
_BARE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_TO_QP = bytes.maketrans(b"%+", b"= ")


def sniff(body: bytes) -> str | None:
    # No other provider sends a form body, and the field name is Yunpian's own.
    return "push" if body.startswith(_FIELD) or b"&" + _FIELD in body else None


def percent_decode(value: bytes) -> bytes:
    """application/x-www-form-urlencoded value decoding, in C: `unquote_plus`, as bytes.

    `urllib.parse.unquote_to_bytes` is pure Python; quoted-printable (`=XX`) is the same escape
    with another marker, and binascii decodes it natively. Literal `=` are protected first.
    A2b_qp reads a `=` that starts no escape its own way (`==`, a soft line break, `=` at the
    end), where `unquote_plus` keeps a bare `%` literally. Each such case but two leaves a `=`
    in the output: a soft line break (a raw line break in the value) and a lone `%` at the
    end. So a result without `=`, from a value without either, is proven right by memchr
    scans, and only a value with a `=` of its own (or a bare `%`) pays the slow path: a regex
    that escapes bare `%` as `%25`, then the same decoding, whose `=` are then all real.
    """
    decoded = _qp(value)
    if (
        b"=" not in decoded
        and b"\n" not in value
        and b"\r" not in value
        and not value.endswith(b"%")
    ):
        return decoded
    return _qp(_BARE_PERCENT.sub(b"%25", value))


def _qp(value: bytes) -> bytes:
    return binascii.a2b_qp(value.replace(b"=", b"=3D").translate(_TO_QP))


def _form_value(body: bytes) -> tuple[bytes, bool]:
    """The `sms_status` value, and whether it is bare JSON (not form-encoded)."""
    # find (memchr), not split: the value is nearly all of a body of kilobytes.
    if body.startswith(_FIELD):
        start = len(_FIELD)
    else:
        start = body.find(b"&" + _FIELD)
        if start < 0:
            raise MalformedBody("form body has no sms_status field")
        start += 1 + len(_FIELD)
    end = body.find(b"&", start)
    value = body[start:] if end < 0 else body[start:end]
    if _is_json(value):
        # No encoder leaves `[` or `{` bare: the value is JSON as it stands, and the JSON text
        # decides where it ends (a `&` may sit inside one of its strings).
        return (value if end < 0 else _json_value(body[start:])), True
    return value, False


def _is_json(value: bytes) -> bool:
    return value.lstrip()[:1] in (b"[", b"{")


def _json_value(rest: bytes) -> bytes:
    """The JSON text at the start of `rest` (which continues with `&field=...`)."""
    try:
        text = rest.decode()
        _, end = json.JSONDecoder().raw_decode(text, len(text) - len(text.lstrip()))
    except (ValueError, RecursionError):
        return rest[: rest.find(b"&")]  # not JSON either way: the decoder names the fault
    return text[:end].encode()


def decode(body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    if endpoint not in ENDPOINTS:
        raise UnknownFormat(f"yunpian has no endpoint {endpoint!r}")
    value, bare = _form_value(body)
    if not bare:
        for _ in range(_MAX_ROUNDS):
            value = percent_decode(value)
            if _is_json(value):
                break
    return by_report(_events, value, endpoint, ctx, ((),))


def _events(value: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    reports = decode_json(_DECODER, value, "yunpian sms_status")
    zone = ctx.tz or DEFAULT_TZ
    events = []
    for index, r in enumerate(reports):
        # The common shapes inline (a call costs more than these checks); the rules otherwise.
        code = c if (c := r.error_msg) and not c.isspace() else None
        status = _SETTLED.get(r.report_status) or map_status(
            PROVIDER, _STATUS, r.report_status, _FAIL_BY_CODE, code
        )
        s = r.sid  # text or a JSON integer: key_part's common cases inline
        t = s.strip() if type(s) is str else str(s) if type(s) is int else ""
        sid = t if 0 < len(t) <= 64 else key_part(s, "sid")
        occurred_at, occurred_at_raw, time_zone = parse_time(r.user_receive_time, zone, PROVIDER)
        events.append(
            make_event(
                ctx,
                PROVIDER,  # provider
                "push",  # channel
                _ENDPOINT,  # endpoint
                index,
                None,  # account
                sid,  # message_key
                sid,  # message_id
                None,  # batch_id
                str(u) if type(u := r.uid) is int else id_or_none(u, "uid"),  # client_ref
                recipient(r.mobile, None, national_cn),  # recipient
                r.mobile,  # recipient_raw
                status,
                r.report_status,  # provider_status
                code,  # provider_code
                d if (d := r.error_detail) and not d.isspace() else None,  # provider_message
                None,  # segments
                None,  # segments_ok
                None,  # opt_out
                occurred_at,
                occurred_at_raw,
                None,  # sent_at
                time_zone,
            )
        )
    return events

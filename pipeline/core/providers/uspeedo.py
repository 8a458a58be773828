"""uSpeedo: `GetUSMSSendReceipt` poll responses and `MsgType` push callbacks.

The body's shape decides the form (the shapes cannot be confused): a bare array is a push,
an object with `MsgType` is a push envelope, an object with `RetCode` is a poll response.
The endpoint header only has to be one of the names below.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from schemas import Channel, ReceiptEvent, Status
from schemas.uspeedo import UspeedoEnvelope, UspeedoPushReceipt, UspeedoReceipt, UspeedoSession

from ...errors import MalformedBody, NotReceipts, ProviderError, UnknownFormat
from ..normalise import (
    Lookup,
    RecordContext,
    code_or_none,
    id_or_none,
    integer,
    key_part,
    make_event,
    map_status,
    national_with_cc,
    parse_time,
    recipient,
)
from ._shared import EACH, by_report, decode_json, sniff_head_first

PROVIDER: Final = "uspeedo"
ENDPOINTS: Final = ("GetUSMSSendReceipt", "push")
DEFAULT_TZ: Final = "UTC"  # uSpeedo sends epoch seconds; a naive time would be UTC

_POLL: Final = "uspeedo.GetUSMSSendReceipt"
_PUSH: Final = "uspeedo.push"
# Header values accepted as `endpoint`; the body then picks poll or push.
_ALIASES: Final = frozenset(
    {"GetUSMSSendReceipt", "GetUSMSSendReceiptResponse", "poll", "push", "callback"}
)

_ENVELOPE = msgspec.json.Decoder(UspeedoEnvelope)
#: Where the report list of each form sits, for decoding report by report: the poll's receipts
#: within each session first, then the push's Data, then a bare push array.
_REPORT_LISTS: Final = (("Data", EACH, "ReceiptSet"), ("Data",), ())
_SESSIONS = msgspec.json.Decoder(list[UspeedoSession])
_PUSHED = msgspec.json.Decoder(list[UspeedoPushReceipt])

_STATUS: Final = Lookup[Status](
    {
        "Success": "DELIVERED",
        "发送成功": "DELIVERED",
        "Sent successfully": "DELIVERED",
        "Fail": "UNDELIVERED",
        "发送失败": "UNDELIVERED",
        "Sending failed": "UNDELIVERED",
        "Unknow": "UNKNOWN",
        "UNKNOWN": "UNKNOWN",
        "状态未知": "UNKNOWN",
        "Unknown state": "UNKNOWN",
        "SubmitFail": "FAILED",
    }
)
_FAIL_BY_CODE: Final = Lookup[Status]({"EXPIRED": "EXPIRED", "REJECTD": "REJECTED"})
_SETTLED: Final = _STATUS.settled("UNDELIVERED")

# A quoted name followed by a colon can only be a JSON key (a quote inside a string is escaped).
# None of these keys exists in the other providers' formats: Yunpian is a form body, Ultiroam
# uses lower-case `sn`/`error_code`/`sms_*`, SMS Partner `success`/`code`/`StatutResponse_List`,
# Tencent `Response` objects and arrays of `report_status`/`sid`/`nationcode` callbacks.
_ARRAY = re.compile(rb"\s*\[")
_ARRAY_OF_OBJECTS = re.compile(rb"\s*\[\s*\{")
_OBJECT = re.compile(rb"\s*\{")
_SESSION_KEY = re.compile(rb'"SessionNo"\s*:')
_PUSH_KEY = re.compile(rb'"MsgType"\s*:')
_POLL_KEY = re.compile(rb'"(?:RetCode|ReceiptSet)"\s*:|"Action"\s*:\s*"GetUSMSSendReceiptResponse"')


def sniff(body: bytes) -> str | None:
    return sniff_head_first(body, _sniff)


def _sniff(body: bytes) -> str | None:
    if _ARRAY_OF_OBJECTS.match(body):
        # Tencent's callback arrays never carry SessionNo.
        return "push" if b'"SessionNo"' in body and _SESSION_KEY.search(body) else None
    if not _OBJECT.match(body):
        return None
    if b'"MsgType"' in body and _PUSH_KEY.search(body):
        return "push"
    if (
        b'"RetCode"' in body or b'"ReceiptSet"' in body or b"GetUSMSSendReceiptResponse" in body
    ) and _POLL_KEY.search(body):
        return "GetUSMSSendReceipt"
    return None


def _data(env: UspeedoEnvelope) -> msgspec.Raw:
    if not env.Data:
        raise MalformedBody("uspeedo body has no Data")
    return env.Data


def _event(
    ctx: RecordContext,
    endpoint: str,
    channel: Channel,
    index: int,
    session: str,
    r: UspeedoReceipt,
    account: str | None,
) -> ReceiptEvent:
    # The common shapes inline (a call costs more than these checks); the rules otherwise.
    code = c if type(c := r.ReceiptCode) is str and c and not c.isspace() else code_or_none(c)
    status = _SETTLED.get(r.ReceiptResult) or map_status(
        PROVIDER, _STATUS, r.ReceiptResult, _FAIL_BY_CODE, code
    )
    phone = (
        t if type(p := r.Phone) is str and 0 < len(t := p.strip()) <= 64 else key_part(p, "Phone")
    )
    # CountryCode is rarely given: its id rule is called only then (a call per report costs).
    cc = None if r.CountryCode is None else id_or_none(r.CountryCode, "CountryCode")
    to = recipient(phone, cc, national_with_cc)
    occurred_at, occurred_at_raw, time_zone = parse_time(
        r.ReceiptTime, ctx.tz or DEFAULT_TZ, PROVIDER
    )
    return make_event(
        ctx,
        PROVIDER,  # provider
        channel,
        endpoint,
        index,
        account,
        f"{session}|{to}",  # message_key
        None,  # message_id
        session,  # batch_id
        u.strip() or None if type(u := r.UserId) is str else id_or_none(u, "UserId"),  # client_ref
        to,  # recipient
        r.Phone or "",  # recipient_raw
        status,
        r.ReceiptResult,  # provider_status
        code,  # provider_code
        d if (d := r.ReceiptDesc) and not d.isspace() else None,  # provider_message
        n if type(n := r.CostCount) is int else integer(n, "CostCount"),  # segments
        None,  # segments_ok
        None,  # opt_out
        occurred_at,
        occurred_at_raw,
        None,  # sent_at
        time_zone,
    )


def _push_events(
    items: list[UspeedoPushReceipt], account: str | None, ctx: RecordContext
) -> list[ReceiptEvent]:
    return [
        _event(
            ctx,
            _PUSH,
            "push",
            i,
            t
            if type(s := r.SessionNo) is str and 0 < len(t := s.strip()) <= 64
            else key_part(s, "SessionNo"),
            r,
            # Rarely given: its id rule is called only then (a call per report costs).
            (None if r.AccountId is None else id_or_none(r.AccountId, "AccountId")) or account,
        )
        for i, r in enumerate(items)
    ]


_MSGTYPE_KINDS: Final = ("uspeedo.inbound", *(f"uspeedo.msgtype{t}" for t in range(1, 100)))
SKIP_KINDS: Final = frozenset({*_MSGTYPE_KINDS, "uspeedo.msgtype_other"})


def _msgtype_kind(msg_type: int) -> str:
    # A closed set, so a hostile body cannot mint unlimited metric labels.
    return _MSGTYPE_KINDS[msg_type] if 0 <= msg_type < 100 else "uspeedo.msgtype_other"


def decode(body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    return by_report(_decode, body, endpoint, ctx, _REPORT_LISTS)


def _decode(body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    if endpoint not in _ALIASES:
        raise UnknownFormat(f"uspeedo has no endpoint {endpoint!r}")
    if _ARRAY.match(body):
        return _push_events(decode_json(_PUSHED, body, "uspeedo push array"), None, ctx)
    # Data stays raw until the envelope says what it holds.
    env = decode_json(_ENVELOPE, body, "uspeedo body")
    account = id_or_none(env.AccountId, "AccountId")
    msg_type = integer(env.MsgType, "MsgType")
    if msg_type is not None:
        if msg_type != 2:
            raise NotReceipts(_msgtype_kind(msg_type))
        return _push_events(decode_json(_PUSHED, _data(env), "uspeedo push Data"), account, ctx)
    ret_code = integer(env.RetCode, "RetCode")
    if ret_code is None:
        raise MalformedBody("uspeedo body has neither MsgType nor RetCode")
    if ret_code != 0:
        raise ProviderError(f"uspeedo RetCode {ret_code}: {(env.Message or '')[:200]}")
    sessions = decode_json(_SESSIONS, _data(env), "uspeedo GetUSMSSendReceipt Data")
    events = []
    index = 0
    for s in sessions:
        session = key_part(s.SessionNo, "SessionNo")
        for r in s.ReceiptSet:
            events.append(_event(ctx, _POLL, "poll", index, session, r, account))
            index += 1
    return events

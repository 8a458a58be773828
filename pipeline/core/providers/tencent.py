"""Tencent Cloud SMS: `PullSmsSendStatus` poll, status callback push, `SendSms` results.

Every body is decoded in one pass with one union type: a JSON array is a callback batch, an
object is an API response envelope `{"Response": ...}` (or, rarely, a single callback object).
The body decides the form: an `endpoint` header only has to be one of the known names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import msgspec
from msgspec import UNSET

from schemas import ReceiptEvent, Status
from schemas.tencent import (
    TencentCallback,
    TencentObject,
    TencentPullStatus,
    TencentSendStatus,
)

from ...errors import MalformedBody, NotReceipts, ProviderError, UnknownFormat
from ..normalise import (
    Lookup,
    RecordContext,
    id_or_none,
    integer,
    key_part,
    make_event,
    map_status,
    national_cn,
    parse_time,
    recipient,
)
from ._shared import by_report, decode_json

PROVIDER: Final = "tencent"
ENDPOINTS: Final = ("PullSmsSendStatus", "callback", "SendSms")
DEFAULT_TZ: Final = "Asia/Shanghai"

# Header aliases (API action names and generic channel names); the body picks the form.
_ALIASES: Final = frozenset(
    {
        *ENDPOINTS,
        "PullSmsSendStatusByPhoneNumber",
        "poll",
        "push",
        "submit",
        "PullSmsReplyStatus",
        "PullSmsReplyStatusByPhoneNumber",
        "SendStatusStatistics",
        "CallbackStatusStatistics",
    }
)
_DECODER = msgspec.json.Decoder(TencentObject | list[TencentCallback])
_KEYS_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
#: Where the report list of each form sits, for decoding report by report.
_REPORT_LISTS: Final = ((), ("Response", "PullSmsSendStatusSet"), ("Response", "SendStatusSet"))
SKIP_KINDS: Final = frozenset({"tencent.reply", "tencent.statistics"})

_STATUS: Final = Lookup[Status](
    {"SUCCESS": "DELIVERED", "FAIL": "UNDELIVERED", "UNKNOWN": "UNKNOWN"}
)
# A FAIL is refined by its carrier code; codes not listed stay UNDELIVERED.
_FAIL_BY_CODE: Final = Lookup[Status](
    {
        "EXPIRED": "EXPIRED",
        "REJECTD": "REJECTED",
        "DELETED": "DELETED",
        "SUBFAIL": "FAILED",
        "COMFAIL": "FAILED",
        "WTNFAIL": "FAILED",
    }
)
#: A submit's `Code` (any case): `Ok` is accepted for sending, anything else failed.
_SUBMIT: Final = Lookup[Status]({"Ok": "PENDING"})
_SETTLED: Final = _STATUS.settled("UNDELIVERED")
#: The largest `Fee` (billable segments) taken as real: it fits a signed int32.
_MAX_FEE: Final = 2**31 - 1
# A poll `Description` is a carrier code (`DELIVRD`, `MSBLACK`, `DB:0103`, `MK:0001`) when it is
# upper-case letters, digits and `_:-` only; anything else (prose, Chinese text) is a message.
_IS_CODE = re.compile(r"[A-Z0-9_:\-]+").fullmatch

# Sniff rules. `{"Response":` as the first key is the Tencent Cloud API 3.0 envelope; no other
# provider has a `Response` key (uSpeedo's `GetUSMSSendReceiptResponse` is a value, not a key).
# Callbacks carry `nationcode`, a key no other provider uses (uSpeedo: `CountryCode`); a status
# callback without it is still recognised by `report_status` with `errmsg` (Yunpian, whose inner
# JSON has `report_status`, spells it `error_msg`, and arrives form-encoded anyway).
_RESPONSE = re.compile(rb'(?:\xef\xbb\xbf)?\s*\{\s*"Response"\s*:')
_SEND_SET = re.compile(rb'"SendStatusSet"\s*:')
_LEAD = re.compile(rb"(?:\xef\xbb\xbf)?\s*[\[{]")
_NATIONCODE = re.compile(rb'"nationcode"\s*:')
_REPORT_STATUS = re.compile(rb'"report_status"\s*:')
_ERRMSG = re.compile(rb'"errmsg"\s*:')
_SNIFF_HEAD = 65536


def sniff(body: bytes) -> str | None:
    # A substring test (a fast scan) before each regex (a slow one) that may find nothing.
    if _RESPONSE.match(body):
        send = b'"SendStatusSet"' in body and _SEND_SET.search(body)
        return "SendSms" if send else "PullSmsSendStatus"
    if _LEAD.match(body):
        head = body[:_SNIFF_HEAD]
        if (b'"nationcode"' in head and _NATIONCODE.search(head)) or (
            b'"report_status"' in head
            and _REPORT_STATUS.search(head)
            and b'"errmsg"' in head
            and _ERRMSG.search(head)
        ):
            return "callback"
    return None


@lru_cache(maxsize=4096)
def _describe(description: str) -> tuple[str | None, str | None]:
    """A poll Description as (provider_code, provider_message); few distinct values, cached."""
    return (description, None) if _IS_CODE(description) else (None, description)


def decode(body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    return by_report(_decode, body, endpoint, ctx, _REPORT_LISTS)


def _decode(body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    if endpoint not in _ALIASES:
        raise UnknownFormat(f"tencent has no endpoint {endpoint!r}")
    obj = decode_json(_DECODER, body, "tencent body")
    if isinstance(obj, list):
        return _callbacks(obj, ctx)
    response = obj.Response
    if response is None:
        if obj.report_status is not None:
            return _callbacks([obj], ctx)  # a lone callback object, not wrapped in an array
        if obj.text is not UNSET:
            raise NotReceipts("tencent.reply")
        raise UnknownFormat(f"tencent object without Response; keys: {_keys(body)}")
    error = response.Error
    if error is not None:
        raise ProviderError(f"tencent error {error.Code}: {error.Message}")
    if response.PullSmsSendStatusSet is not UNSET:
        return _poll(response.PullSmsSendStatusSet or [], ctx)
    if response.SendStatusSet is not UNSET:
        return _submit(response.SendStatusSet or [], response.RequestId, ctx)
    if response.PullSmsReplyStatusSet is not UNSET:
        raise NotReceipts("tencent.reply")
    if response.SendStatusStatistics is not UNSET or response.CallbackStatusStatistics is not UNSET:
        raise NotReceipts("tencent.statistics")
    raise UnknownFormat(f"tencent Response without a known set; keys: {_keys(body, 'Response')}")


def _keys(body: bytes, inner: str | None = None) -> str:
    """The keys of the body (or of its `inner` object), for an UnknownFormat message."""
    try:
        keys = _KEYS_DECODER.decode(body)
        if inner is not None:
            keys = _KEYS_DECODER.decode(keys[inner])
    except (msgspec.DecodeError, KeyError, RecursionError, UnicodeDecodeError):
        return "?"
    return ", ".join(sorted(keys)[:20]) or "none"


def _poll(reports: list[TencentPullStatus], ctx: RecordContext) -> list[ReceiptEvent]:
    zone = ctx.tz or DEFAULT_TZ
    endpoint = "tencent.PullSmsSendStatus"
    events = []
    for index, r in enumerate(reports):
        serial = (
            t
            if type(s := r.SerialNo) is str and 0 < len(t := s.strip()) <= 64
            else key_part(s, "SerialNo")
        )
        # The common shapes inline (a call costs more than these checks); the rules otherwise.
        d = r.Description
        code, message = _describe(d) if d and not d.isspace() else (None, None)
        phone, subscriber = r.PhoneNumber, r.SubscriberNumber
        if phone is not None and phone.lstrip()[:1] == "+":
            raw_phone, to = phone, recipient(phone)
        elif subscriber and r.CountryCode is not None:
            cc = id_or_none(r.CountryCode, "CountryCode")
            raw_phone, to = subscriber, recipient(subscriber, cc, national_cn)
        elif phone or subscriber:
            raw_phone = phone or subscriber or ""
            to = recipient(raw_phone, None, national_cn)
        else:
            raise MalformedBody(f"tencent PullSmsSendStatusSet[{index}] has no phone number")
        occurred_at, occurred_raw, time_zone = parse_time(r.UserReceiveTime, zone, PROVIDER)
        events.append(
            make_event(
                ctx,
                PROVIDER,  # provider
                "poll",  # channel
                endpoint,
                index,
                None,  # account
                serial,  # message_key
                serial,  # message_id
                None,  # batch_id
                None if (sc := r.SessionContext) is None else sc.strip() or None,  # client_ref
                to,  # recipient
                raw_phone,  # recipient_raw
                _SETTLED.get(r.ReportStatus)
                or map_status(PROVIDER, _STATUS, r.ReportStatus, _FAIL_BY_CODE, code),
                r.ReportStatus,  # provider_status
                code,  # provider_code
                message,  # provider_message
                None,  # segments
                None,  # segments_ok
                None,  # opt_out
                occurred_at,
                occurred_raw,  # occurred_at_raw
                None,  # sent_at
                time_zone,
            )
        )
    return events


def _callbacks(reports: Sequence[TencentCallback], ctx: RecordContext) -> list[ReceiptEvent]:
    zone = ctx.tz or DEFAULT_TZ
    endpoint = "tencent.callback"
    events = []
    replies = 0
    for index, r in enumerate(reports):
        raw_status = r.report_status
        if raw_status is None:
            if r.text is not UNSET:
                replies += 1  # a reply in the batch: not a receipt, skipped
                continue
            raise MalformedBody(f"tencent callback[{index}] has no report_status")
        serial = (
            t if type(s := r.sid) is str and 0 < len(t := s.strip()) <= 64 else key_part(s, "sid")
        )
        mobile = r.mobile
        if mobile is None:
            raise MalformedBody(f"tencent callback[{index}] lacks mobile")
        code = c if (c := r.errmsg) and not c.isspace() else None
        occurred_at, occurred_raw, time_zone = parse_time(r.user_receive_time, zone, PROVIDER)
        events.append(
            make_event(
                ctx,
                PROVIDER,  # provider
                "push",  # channel
                endpoint,
                index,
                None,  # account
                serial,  # message_key
                serial,  # message_id
                None,  # batch_id
                None,  # client_ref
                recipient(
                    mobile,
                    cc.strip() or None
                    if type(cc := r.nationcode) is str
                    else id_or_none(cc, "nationcode"),
                    national_cn,
                ),
                mobile,  # recipient_raw
                _SETTLED.get(raw_status)
                or map_status(PROVIDER, _STATUS, raw_status, _FAIL_BY_CODE, code),
                raw_status,  # provider_status
                code,  # provider_code
                d if (d := r.description) and not d.isspace() else None,  # provider_message
                None,  # segments
                None,  # segments_ok
                None,  # opt_out
                occurred_at,
                occurred_raw,  # occurred_at_raw
                None,  # sent_at
                time_zone,
            )
        )
    if replies and not events:
        raise NotReceipts("tencent.reply")
    return events


def _submit(
    results: list[TencentSendStatus], request_id: str | None, ctx: RecordContext
) -> list[ReceiptEvent]:
    endpoint = "tencent.SendSms"
    events = []
    for index, r in enumerate(results):
        phone = r.PhoneNumber
        # The rules' common cases inline (a call costs more than their checks).
        p = phone.strip()
        to = recipient(p if 0 < len(p) <= 64 else key_part(phone, "PhoneNumber"), None, national_cn)
        code = r.Code
        status = _SUBMIT[code] or "FAILED"
        s = r.SerialNo
        serial = s.strip() or None if type(s) is str else id_or_none(s, "SerialNo")
        if serial is not None:
            key = serial if len(serial) <= 64 else key_part(serial, "SerialNo")
        elif status == "PENDING":
            raise MalformedBody(f"tencent SendStatusSet[{index}] is Ok without a SerialNo")
        else:
            # A number whose send failed gets no SerialNo: key it by request and recipient
            # instead, so failures of different numbers or requests stay distinct.
            key = f"{key_part(request_id, 'RequestId')}|{to}"
        fee = f if type(f := r.Fee) is int else integer(f, "Fee")
        if fee is not None and not 0 <= fee <= _MAX_FEE:
            raise MalformedBody(f"tencent SendStatusSet[{index}] Fee out of range: {fee}")
        events.append(
            make_event(
                ctx,
                PROVIDER,  # provider
                "submit",  # channel
                endpoint,
                index,
                None,  # account
                key,  # message_key
                serial,  # message_id
                None,  # batch_id
                None if (sc := r.SessionContext) is None else sc.strip() or None,  # client_ref
                to,  # recipient
                phone,  # recipient_raw
                status,
                code,  # provider_status
                None,  # provider_code
                m if (m := r.Message) and not m.isspace() else None,  # provider_message
                fee,  # segments
                None,  # segments_ok
                None,  # opt_out
                None,  # occurred_at
                None,  # occurred_at_raw
                None,  # sent_at
                None,  # time_zone
            )
        )
    return events

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
from ..normalise import RecordContext, e164, make_event, map_status, provider_time
from ._shared import by_report, decode_json, id_text

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

_STATUS: Final[dict[str, Status]] = {
    "SUCCESS": "DELIVERED",
    "FAIL": "UNDELIVERED",
    "UNKNOWN": "UNKNOWN",
}
# A FAIL is refined by its carrier code; codes not listed stay UNDELIVERED.
_FAIL_BY_CODE: Final[dict[str, Status]] = {
    "EXPIRED": "EXPIRED",
    "REJECTD": "REJECTED",
    "DELETED": "DELETED",
    "SUBFAIL": "FAILED",
    "COMFAIL": "FAILED",
    "WTNFAIL": "FAILED",
}
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
    if _RESPONSE.match(body):
        return "SendSms" if _SEND_SET.search(body) else "PullSmsSendStatus"
    if _LEAD.match(body):
        head = body[:_SNIFF_HEAD]
        if _NATIONCODE.search(head) or (_REPORT_STATUS.search(head) and _ERRMSG.search(head)):
            return "callback"
    return None


def _status(raw: str, code: str | None) -> Status:
    status = _STATUS.get(raw) or map_status(PROVIDER, _STATUS, raw)  # counts the unmapped
    if status == "UNDELIVERED" and code is not None:
        return _FAIL_BY_CODE.get(code, status)
    return status


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
        serial = id_text(r.SerialNo)
        if not serial:
            raise MalformedBody(f"tencent PullSmsSendStatusSet[{index}] has an empty SerialNo")
        code, message = _describe(r.Description) if r.Description else (None, None)
        phone = r.PhoneNumber
        if phone is not None and phone[:1] == "+":
            recipient = e164(phone)
        elif r.SubscriberNumber and r.CountryCode is not None:
            recipient = e164(r.SubscriberNumber, id_text(r.CountryCode))
        elif phone or r.SubscriberNumber:
            recipient = e164(phone or r.SubscriberNumber or "")
        else:
            raise MalformedBody(f"tencent PullSmsSendStatusSet[{index}] has no phone number")
        occurred_at, occurred_raw, time_zone = provider_time(r.UserReceiveTime, zone)
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
                r.SessionContext,  # client_ref
                recipient,
                phone or r.SubscriberNumber or "",  # recipient_raw
                _status(r.ReportStatus, code),  # status
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
        serial = id_text(r.sid)
        mobile = r.mobile
        if not serial or not mobile:
            missing = "sid" if not serial else "mobile"
            raise MalformedBody(f"tencent callback[{index}] lacks {missing}")
        code = r.errmsg or None
        occurred_at, occurred_raw, time_zone = provider_time(r.user_receive_time, zone)
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
                e164(mobile, id_text(r.nationcode)),  # recipient
                mobile,  # recipient_raw
                _status(raw_status, code),  # status
                raw_status,  # provider_status
                code,  # provider_code
                r.description or None,  # provider_message
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
        if not phone.strip():
            raise MalformedBody(f"tencent SendStatusSet[{index}] has an empty PhoneNumber")
        recipient = e164(phone)
        serial = id_text(r.SerialNo) or None
        # A number whose send failed gets no SerialNo: key it by request and recipient instead,
        # so failures of different numbers or requests stay distinct.
        key = serial if serial is not None else f"{request_id or ''}|{recipient}"
        code = r.Code
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
                r.SessionContext,  # client_ref
                recipient,
                phone,  # recipient_raw
                "PENDING" if code.lower() == "ok" else "FAILED",  # status
                code,  # provider_status
                code,  # provider_code
                r.Message or None,  # provider_message
                r.Fee,  # segments
                None,  # segments_ok
                None,  # opt_out
                None,  # occurred_at
                None,  # occurred_at_raw
                None,  # sent_at
                None,  # time_zone
            )
        )
    return events

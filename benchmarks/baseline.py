"""The straightforward baseline: the same job as `pipeline.core._batch.Core`, written the usual way.

Per record: headers or shape decide the provider, then `json.loads` into dicts (`urllib.parse`
for Yunpian's form bodies, `xml.etree.ElementTree` for SMS Partner's XML with any DOCTYPE
refused), one dict per canonical event with `phonenumbers` for E.164, `datetime`/`zoneinfo` for
every time value, a plain dict for the dedupe window, `hashlib` for `event_id` and `json.dumps`
for the output. No caches, no fast paths: what a competent developer writes when speed is not
the question. It is written from shared/receipt-event.md, not from the decoders, so equal output
is a real cross-check of both.

Two rules the contract leaves open are taken from the decoders (both are the only sensible
reading, and the point here is equal output):
- `event_id` is BLAKE2b-128 of `provider \\x1f message_key \\x1f status` (the contract says "a
  128-bit digest of the dedupe identity" without naming the digest);
- a Tencent `SendSms` result whose send failed carries an empty `SerialNo`; it is keyed by
  `RequestId|recipient` so that failures of different numbers stay distinct.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

MAX_BODY_BYTES = 8 * 1024 * 1024
RANKS = {"PENDING": 1, "SENT": 2, "UNKNOWN": 3}  # every final: 4
DEFAULT_ZONES = {
    "yunpian": "Asia/Shanghai",
    "tencent": "Asia/Shanghai",
    "smspartner": "Europe/Paris",
    "ultiroam": "UTC",
}


class Failure(Exception):
    """A record that becomes a dead letter; `error_class` as the pipeline names it."""

    error_class = "MalformedBody"


class Unsafe(Failure):
    error_class = "UnsafeXml"


class Unknown(Failure):
    error_class = "UnknownFormat"


class ProviderFailure(Failure):
    error_class = "ProviderError"


class TooLarge(Failure):
    error_class = "BodyTooLarge"


class NotReceipts(Exception):
    pass


class Output(NamedTuple):
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


# -- helpers --------------------------------------------------------------------------------------


def load_json(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Failure(f"invalid JSON: {exc}") from None


def require(obj: Any, key: str, kinds: type | tuple[type, ...], optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise Failure(f"missing {key}")
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise Failure(f"{key} has the wrong type")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise Failure(f"{what} is not a list")
    for item in value:
        if not isinstance(item, dict):
            raise Failure(f"{what} holds a non-object")
    return value


def text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def rfc3339(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond // 1000:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def from_epoch(seconds: int | str) -> str:
    try:
        value = int(seconds)
        if value < 0:
            raise ValueError("negative")
        return rfc3339(datetime.fromtimestamp(value, UTC))
    except (ValueError, OverflowError, OSError) as exc:
        raise Failure(f"bad epoch {seconds!r}") from exc


def from_local(text: str, zone: str) -> str:
    try:
        naive = datetime.strptime(" ".join(text.split()), "%Y-%m-%d %H:%M:%S")
        return rfc3339(naive.replace(tzinfo=ZoneInfo(zone)))
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise Failure(f"bad time {text!r}") from exc


def when(value: Any, zone: str) -> tuple[str | None, str | None, str | None]:
    """(occurred_at, occurred_at_raw, time_zone) of an epoch or a naive local time."""
    if value is None or value == "":
        return None, None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return from_epoch(value), str(value), None
    if not isinstance(value, str):
        raise Failure("time has the wrong type")
    if re.fullmatch(r"[0-9]+", value.strip()):
        return from_epoch(value.strip()), value, None
    return from_local(value, zone), value, zone


# Phone numbers (receipt-event.md "Phone numbers"): the contract decides whether a number can be
# written in E.164; phonenumbers writes it.


def cn_rule(digits: str) -> str | None:
    return "+86" + digits if len(digits) == 11 and digits.startswith("1") else None


def cc_rule(digits: str) -> str | None:
    return None if digits.startswith("0") else "+" + digits


def fr_rule(digits: str) -> str | None:
    return "+33" + digits[1:] if len(digits) == 10 and digits.startswith("0") else None


PHONE_STATS: Counter[str] = Counter()


def recipient(
    raw: str, country_code: Any = None, rule: Callable[[str], str | None] | None = None
) -> str:
    cleaned = re.sub(r"[ \-()]", "", raw.strip())
    candidate = None
    if cleaned.startswith("+"):
        if re.fullmatch(r"[0-9]+", cleaned[1:]):
            candidate = cleaned
    elif re.fullmatch(r"[0-9]+", cleaned):
        code = str(country_code).strip().lstrip("+") if country_code is not None else ""
        if re.fullmatch(r"[0-9]+", code):
            candidate = "+" + code + (cleaned[1:] if cleaned.startswith("0") else cleaned)
        elif rule is not None:
            candidate = rule(cleaned)
    if candidate is None:
        return raw.strip()
    try:
        formatted = phonenumbers.format_number(
            phonenumbers.parse(candidate, None), phonenumbers.PhoneNumberFormat.E164
        )
    except phonenumbers.NumberParseException:
        PHONE_STATS["unparsable"] += 1
        return candidate
    if formatted != candidate:
        # phonenumbers "corrects" some numbers (a national prefix after the country code); the
        # contract keeps the digits as given.
        PHONE_STATS["corrected"] += 1
        return candidate
    return formatted


class Context(NamedTuple):
    topic: str
    partition: int
    offset: int
    observed_at: str
    account: str | None
    tz: str | None


def event(
    ctx: Context,
    provider: str,
    channel: str,
    endpoint: str,
    index: int,
    message_key: str,
    status: str,
    provider_status: str,
    recipient_raw: str,
    recipient_e164: str,
    **fields: Any,
) -> dict[str, Any]:
    digest = hashlib.blake2b(f"{provider}\x1f{message_key}\x1f{status}".encode(), digest_size=16)
    rank = RANKS.get(status, 4)
    account = ctx.account if ctx.account is not None else fields.get("account")
    return {
        "v": 1,
        "event_id": digest.hexdigest(),
        "provider": provider,
        "account": account,
        "channel": channel,
        "endpoint": endpoint,
        "message_key": message_key,
        "message_id": fields.get("message_id"),
        "batch_id": fields.get("batch_id"),
        "client_ref": fields.get("client_ref") or None,
        "recipient": recipient_e164,
        "recipient_raw": recipient_raw,
        "status": status,
        "finality": "intermediate" if rank < 3 else "soft_final" if rank == 3 else "final",
        "provider_status": provider_status,
        "provider_code": fields.get("provider_code"),
        "provider_message": fields.get("provider_message"),
        "segments": fields.get("segments"),
        "segments_ok": fields.get("segments_ok"),
        "opt_out": fields.get("opt_out"),
        "occurred_at": fields.get("occurred_at"),
        "occurred_at_raw": fields.get("occurred_at_raw"),
        "sent_at": fields.get("sent_at"),
        "time_zone": fields.get("time_zone"),
        "observed_at": ctx.observed_at,
        "source": {
            "topic": ctx.topic,
            "partition": ctx.partition,
            "offset": ctx.offset,
            "index": index,
        },
    }


# -- uSpeedo --------------------------------------------------------------------------------------

USPEEDO_STATUS = {
    "success": "DELIVERED",
    "发送成功": "DELIVERED",
    "sent successfully": "DELIVERED",
    "fail": "UNDELIVERED",
    "发送失败": "UNDELIVERED",
    "sending failed": "UNDELIVERED",
    "unknow": "UNKNOWN",
    "unknown": "UNKNOWN",
    "状态未知": "UNKNOWN",
    "unknown state": "UNKNOWN",
    "submitfail": "FAILED",
}
FAIL_CODES = {"EXPIRED": "EXPIRED", "REJECTD": "REJECTED"}


def uspeedo(body: bytes, ctx: Context) -> list[dict[str, Any]]:
    data = load_json(body)
    receipts: list[tuple[str, str, dict[str, Any], Any]] = []  # (channel, session, item, account)
    if isinstance(data, list):
        for item in as_list(data, "push array"):
            receipts.append(("push", item.get("SessionNo"), item, item.get("AccountId")))
    elif isinstance(data, dict):
        if data.get("MsgType") is not None:
            if data["MsgType"] != 2:
                raise NotReceipts()
            for item in as_list(data.get("Data"), "Data"):
                receipts.append(
                    (
                        "push",
                        item.get("SessionNo"),
                        item,
                        item.get("AccountId") or data.get("AccountId"),
                    )
                )
        elif data.get("RetCode") is not None:
            if data["RetCode"] != 0:
                raise ProviderFailure(f"RetCode {data['RetCode']}: {data.get('Message')}")
            for session in as_list(data.get("Data"), "Data"):
                for item in as_list(session.get("ReceiptSet"), "ReceiptSet"):
                    receipts.append(("poll", session.get("SessionNo"), item, data.get("AccountId")))
        else:
            raise Failure("neither MsgType nor RetCode")
    else:
        raise Failure("not an object")
    events = []
    for index, (channel, session, item, account) in enumerate(receipts):
        if not isinstance(session, (str, int)) or isinstance(session, bool):
            raise Failure("SessionNo")
        phone = require(item, "Phone", str)
        result = require(item, "ReceiptResult", str)
        code = text_or_none(item.get("ReceiptCode"))
        status = USPEEDO_STATUS.get(result.lower(), "UNKNOWN")
        if status == "UNDELIVERED" and code in FAIL_CODES:
            status = FAIL_CODES[code]
        number = recipient(phone, item.get("CountryCode"), cc_rule)
        receipt_time = item.get("ReceiptTime")
        occurred = None if receipt_time in (None, 0, "0", "") else from_epoch(receipt_time)
        endpoint = "uspeedo.GetUSMSSendReceipt" if channel == "poll" else "uspeedo.push"
        events.append(
            event(
                ctx,
                "uspeedo",
                channel,
                endpoint,
                index,
                f"{session}|{number}",
                status,
                result,
                phone,
                number,
                account=text_or_none(account),
                batch_id=str(session),
                client_ref=text_or_none(item.get("UserId")),
                provider_code=code or None,
                provider_message=item.get("ReceiptDesc") or None,
                segments=item.get("CostCount"),
                occurred_at=occurred,
                occurred_at_raw=text_or_none(receipt_time) or None,
            )
        )
    return events


# -- Ultiroam -------------------------------------------------------------------------------------

ULTIROAM_STATUS = {
    "SENDING": "PENDING",
    "SENT_OK": "SENT",
    "DELIVERED": "DELIVERED",
    "FAILED": "FAILED",
}


def tp_status(code: int) -> str:
    if code < 32:
        return "DELIVERED"
    if code < 64:
        return "SENT"
    if code < 96:
        return "UNDELIVERED"
    if code < 128:
        return "EXPIRED"
    return "UNDELIVERED"


def ultiroam(body: bytes, ctx: Context) -> list[dict[str, Any]]:
    data = load_json(body)
    if not isinstance(data, dict):
        raise Failure("not an object")
    if data.get("error_code") not in (None, 200, "200"):
        raise ProviderFailure(f"error_code {data['error_code']}")
    present = [k for k in ("result", "sms_result", "sms_deliver_status") if data.get(k) is not None]
    if not present:
        if "sn" not in data:
            raise Failure("no sn")
        raise NotReceipts()
    key = present[0]
    items = as_list(data[key], key)
    endpoint = "ultiroam.query_sms_result" if key == "result" else f"ultiroam.{key}"
    channel = "poll" if key == "result" else "push"
    sn = data.get("sn")
    if sn is None:
        raise Failure("receipts without sn")
    sn = str(sn)
    zone = ctx.tz or DEFAULT_ZONES["ultiroam"]
    events = []
    for index, item in enumerate(items):
        number = require(item, "number", str)
        sent = require(item, "time", str)
        port = require(item, "port", (int, str))
        ref_id = require(item, "ref_id", (int, str))
        e164 = recipient(number)
        fields: dict[str, Any] = {}
        if key == "sms_deliver_status":
            code = require(item, "status_code", int)
            if not 0 <= code <= 255:
                raise Failure("status_code out of range")
            status = tp_status(code)
            provider_status = fields["provider_code"] = str(code)
        else:
            provider_status = require(item, "status", str)
            status = ULTIROAM_STATUS.get(provider_status, "UNKNOWN")
            fields.update(
                client_ref=text_or_none(item.get("user_id")),
                segments=item.get("count"),
                segments_ok=item.get("succ_count"),
            )
        events.append(
            event(
                ctx,
                "ultiroam",
                channel,
                endpoint,
                index,
                f"{sn}|{port}|{e164}|{ref_id}|{sent}",
                status,
                provider_status,
                number,
                e164,
                account=sn,
                sent_at=from_local(sent, zone),
                time_zone=zone,
                **fields,
            )
        )
    return events


# -- Yunpian --------------------------------------------------------------------------------------

YUNPIAN_STATUS = {"SUCCESS": "DELIVERED", "FAIL": "UNDELIVERED", "UNKNOWN": "UNKNOWN"}


def yunpian(body: bytes, ctx: Context) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Failure("form body is not UTF-8") from exc
    value = None
    for pair in text.split("&"):
        if pair.startswith("sms_status="):
            value = pair[len("sms_status=") :]
            break
    if value is None:
        raise Failure("no sms_status field")
    try:
        for _ in range(3):  # some senders encode it twice: decode until it is JSON
            value = unquote_plus(value, errors="strict")
            if value.lstrip().startswith("["):
                break
    except UnicodeDecodeError as exc:
        raise Failure("sms_status is not UTF-8") from exc
    reports = as_list(load_json(value), "sms_status")
    zone = ctx.tz or DEFAULT_ZONES["yunpian"]
    events = []
    for index, r in enumerate(reports):
        sid = str(require(r, "sid", (int, str)))
        mobile = require(r, "mobile", str)
        report_status = require(r, "report_status", str)
        code = r.get("error_msg") or None
        status = YUNPIAN_STATUS.get(report_status, "UNKNOWN")
        if status == "UNDELIVERED" and code in FAIL_CODES:
            status = FAIL_CODES[code]
        raw_time = r.get("user_receive_time")
        events.append(
            event(
                ctx,
                "yunpian",
                "push",
                "yunpian.push",
                index,
                sid,
                status,
                report_status,
                mobile,
                recipient(mobile, None, cn_rule),
                message_id=sid,
                client_ref=text_or_none(r.get("uid")),
                provider_code=code,
                provider_message=r.get("error_detail"),
                occurred_at=from_local(raw_time, zone) if raw_time else None,
                occurred_at_raw=raw_time,
                time_zone=zone if raw_time else None,
            )
        )
    return events


# -- SMS Partner ----------------------------------------------------------------------------------

SMSPARTNER_STATUS = {"Delivered": "DELIVERED", "Not delivered": "UNDELIVERED", "Waiting": "SENT"}
BOOLEAN = {"true": True, "1": True, "false": False, "0": False, "": None}


def smspartner_xml(body: bytes) -> tuple[str, list[tuple[str, str, bool | None, str]]]:
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise Unsafe("XML with a DTD refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise Failure(f"invalid XML: {exc}") from None
    entries = list(root)
    if root.tag != "result" or len(entries) < 3:
        raise Failure("not a bulk-status result")

    def leaf(node: ET.Element) -> str:
        if len(node):
            raise Failure("nested entry where a value belongs")
        return (node.text or "").strip()

    success = BOOLEAN.get(leaf(entries[0]).lower())
    if success is None:
        raise Failure("success is not a boolean")
    if not success:
        raise ProviderFailure(f"error {leaf(entries[1])}: {leaf(entries[2])}")
    message_id = leaf(entries[2])
    rows = []
    for entry in entries[3:]:
        kids = list(entry)
        if not kids:
            continue
        for row in kids if all(len(k) for k in kids) else [entry]:
            fields = [leaf(f) for f in row]
            if len(fields) != 4:
                raise Failure("a recipient needs four entries")
            phone, status, stop, date = fields
            if stop.lower() not in BOOLEAN:
                raise Failure("stopSMS is not a boolean")
            rows.append((phone, status, BOOLEAN[stop.lower()], date))
    return message_id, rows


def smspartner(body: bytes, ctx: Context) -> list[dict[str, Any]]:
    rows: list[tuple[str, Any, Any, Any, Any]] = []  # (message_id, phone, status, stop, date)
    if body.lstrip().startswith(b"<"):
        message_id, xml_rows = smspartner_xml(body)
        rows = [(message_id, *row) for row in xml_rows]
    else:
        data = load_json(body)
        if not isinstance(data, dict):
            raise Failure("not an object")
        if data.get("success") is False:
            raise ProviderFailure(f"error {data.get('code')}: {data.get('message')}")
        top = data.get("message_id", data.get("messageId"))
        if "StatutResponse_List" in data:
            reports = as_list(data["StatutResponse_List"] or [], "StatutResponse_List")
        elif data.get("status") is not None or data.get("statut") is not None:
            reports = [data]  # the single-message form
        else:
            raise Unknown("no StatutResponse_List")
        for r in reports:
            mid = r.get("messageId", r.get("message_id"))
            phone = r.get("phoneNumber", r.get("number"))
            status = r.get("status", r.get("statut"))
            stop = r.get("stopSMS", r.get("stopSms"))
            if not isinstance(phone, str) or not isinstance(status, str):
                raise Failure("phone or status missing or not text")
            if stop is not None and not isinstance(stop, bool):
                raise Failure("stopSMS is not a boolean")
            rows.append((str(mid if mid is not None else top), phone, status, stop, r.get("date")))
    zone = ctx.tz or DEFAULT_ZONES["smspartner"]
    events = []
    for index, (message_id, phone, status, stop, date) in enumerate(rows):
        if not message_id or message_id == "None":
            raise Failure("no message_id")
        number = recipient(phone, None, fr_rule)
        occurred, occurred_raw, time_zone = when(date, zone)
        events.append(
            event(
                ctx,
                "smspartner",
                "poll",
                "smspartner.bulk-status",
                index,
                f"{message_id}|{number}",
                SMSPARTNER_STATUS.get(status, "UNKNOWN"),
                status,
                phone,
                number,
                batch_id=message_id,
                opt_out=stop,
                occurred_at=occurred,
                occurred_at_raw=occurred_raw,
                time_zone=time_zone,
            )
        )
    return events


# -- Tencent --------------------------------------------------------------------------------------

TENCENT_STATUS = {"SUCCESS": "DELIVERED", "FAIL": "UNDELIVERED", "UNKNOWN": "UNKNOWN"}
TENCENT_FAIL_CODES = {
    "EXPIRED": "EXPIRED",
    "REJECTD": "REJECTED",
    "DELETED": "DELETED",
    "SUBFAIL": "FAILED",
    "COMFAIL": "FAILED",
    "WTNFAIL": "FAILED",
}


def tencent_status(raw: str, code: str | None) -> str:
    status = TENCENT_STATUS.get(raw, "UNKNOWN")
    if status == "UNDELIVERED" and code in TENCENT_FAIL_CODES:
        return TENCENT_FAIL_CODES[code]
    return status


def tencent(body: bytes, ctx: Context) -> list[dict[str, Any]]:
    data = load_json(body)
    zone = ctx.tz or DEFAULT_ZONES["tencent"]
    if isinstance(data, dict) and "Response" not in data and data.get("report_status") is not None:
        data = [data]
    if isinstance(data, list):
        events = []
        replies = 0
        for index, r in enumerate(as_list(data, "callback")):
            if r.get("report_status") is None:
                if "text" in r:
                    replies += 1
                    continue
                raise Failure("callback without report_status")
            raw_status = require(r, "report_status", str)
            serial = text_or_none(r.get("sid"))
            mobile = require(r, "mobile", str)
            if not serial:
                raise Failure("callback without sid")
            code = r.get("errmsg") or None
            occurred, occurred_raw, time_zone = when(r.get("user_receive_time"), zone)
            events.append(
                event(
                    ctx,
                    "tencent",
                    "push",
                    "tencent.callback",
                    index,
                    serial,
                    tencent_status(raw_status, code),
                    raw_status,
                    mobile,
                    recipient(mobile, r.get("nationcode")),
                    message_id=serial,
                    provider_code=code,
                    provider_message=r.get("description") or None,
                    occurred_at=occurred,
                    occurred_at_raw=occurred_raw,
                    time_zone=time_zone,
                )
            )
        if replies and not events:
            raise NotReceipts()
        return events
    if not isinstance(data, dict):
        raise Failure("not an object")
    response = data.get("Response")
    if not isinstance(response, dict):
        if "text" in data:
            raise NotReceipts()
        raise Unknown("no Response")
    if response.get("Error") is not None:
        error = response["Error"]
        raise ProviderFailure(f"{error.get('Code')}: {error.get('Message')}")
    if "PullSmsSendStatusSet" in response:
        events = []
        for index, r in enumerate(
            as_list(response["PullSmsSendStatusSet"] or [], "PullSmsSendStatusSet")
        ):
            serial = text_or_none(r.get("SerialNo"))
            if not serial:
                raise Failure("empty SerialNo")
            raw_status = require(r, "ReportStatus", str)
            description = r.get("Description") or None
            code = (
                description if description and re.fullmatch(r"[A-Z0-9_:\-]+", description) else None
            )
            phone = require(r, "PhoneNumber", str, optional=True)
            subscriber = r.get("SubscriberNumber")
            if phone is not None and phone.startswith("+"):
                number = recipient(phone)
            elif subscriber and r.get("CountryCode") is not None:
                number = recipient(subscriber, r["CountryCode"])
            elif phone or subscriber:
                number = recipient(phone or subscriber)
            else:
                raise Failure("no phone number")
            occurred, occurred_raw, time_zone = when(r.get("UserReceiveTime"), zone)
            events.append(
                event(
                    ctx,
                    "tencent",
                    "poll",
                    "tencent.PullSmsSendStatus",
                    index,
                    serial,
                    tencent_status(raw_status, code),
                    raw_status,
                    phone if phone is not None else subscriber or "",
                    number,
                    message_id=serial,
                    client_ref=r.get("SessionContext"),
                    provider_code=code,
                    provider_message=description if code is None else None,
                    occurred_at=occurred,
                    occurred_at_raw=occurred_raw,
                    time_zone=time_zone,
                )
            )
        return events
    if "SendStatusSet" in response:
        events = []
        for index, r in enumerate(as_list(response["SendStatusSet"] or [], "SendStatusSet")):
            phone = require(r, "PhoneNumber", str)
            code = require(r, "Code", str)
            if not phone.strip():
                raise Failure("empty PhoneNumber")
            number = recipient(phone)
            serial = text_or_none(r.get("SerialNo")) or None
            key = serial if serial is not None else f"{response.get('RequestId') or ''}|{number}"
            events.append(
                event(
                    ctx,
                    "tencent",
                    "submit",
                    "tencent.SendSms",
                    index,
                    key,
                    "PENDING" if code.lower() == "ok" else "FAILED",
                    code,
                    phone,
                    number,
                    message_id=serial,
                    client_ref=r.get("SessionContext"),
                    provider_code=code,
                    provider_message=r.get("Message") or None,
                    segments=r.get("Fee"),
                )
            )
        return events
    if {
        "PullSmsReplyStatusSet",
        "SendStatusStatistics",
        "CallbackStatusStatistics",
    } & response.keys():
        raise NotReceipts()
    raise Unknown("unknown Response")


# -- routing, dedupe, encoding --------------------------------------------------------------------

DECODERS: dict[str, Callable[[bytes, Context], list[dict[str, Any]]]] = {
    "uspeedo": uspeedo,
    "ultiroam": ultiroam,
    "yunpian": yunpian,
    "smspartner": smspartner,
    "tencent": tencent,
}


def sniff(body: bytes) -> str:
    """The provider of an unlabelled body, from its shape."""
    stripped = body.lstrip()
    if body.startswith(b"sms_status=") or b"&sms_status=" in body:
        return "yunpian"
    if stripped.startswith(b"<"):
        return "smspartner"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Unknown("not a known body") from None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        if "SessionNo" in data[0]:
            return "uspeedo"
        if "nationcode" in data[0] or ("report_status" in data[0] and "errmsg" in data[0]):
            return "tencent"
    if isinstance(data, dict):
        if "Response" in data:
            return "tencent"
        if (
            "MsgType" in data
            or "RetCode" in data
            or data.get("Action") == "GetUSMSSendReceiptResponse"
        ):
            return "uspeedo"
        if "sn" in data or "error_code" in data:
            return "ultiroam"
        if "StatutResponse_List" in data or ("success" in data and "code" in data):
            return "smspartner"
    raise Unknown("not a known body")


class Baseline:
    """decode → normalise → dedupe → encode, one record at a time."""

    def __init__(self) -> None:
        self.window: dict[tuple[str, str], dict[str, Any]] = {}
        self.receipts = 0
        self.duplicates = 0
        self.stale = 0
        self.dead_letters: Counter[str] = Counter()
        self.skipped = 0

    def decode(self, record: Any) -> list[dict[str, Any]]:
        """Events of one `pipeline.core._batch.InputRecord`; raises Failure or NotReceipts."""
        body = record.value
        if len(body) > MAX_BODY_BYTES:
            raise TooLarge("body too large")
        headers: dict[str, str] = {}
        for key, value in record.headers:
            headers.setdefault(key, value.decode("utf-8", "replace"))
        provider = headers.get("provider") or sniff(body)
        if provider not in DECODERS:
            raise Unknown(f"unknown provider {provider}")
        seconds, millis = divmod(record.timestamp_ms, 1000)
        moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)
        ctx = Context(
            record.topic,
            record.partition,
            record.offset,
            rfc3339(moment),
            headers.get("account"),
            headers.get("tz"),
        )
        return DECODERS[provider](body, ctx)

    def admit(self, ev: dict[str, Any]) -> bool:
        """The window: duplicate identity or stale rank → dropped."""
        state = self.window.setdefault(
            (ev["provider"], ev["message_key"]), {"statuses": set(), "top": 0}
        )
        rank = RANKS.get(ev["status"], 4)
        if ev["status"] in state["statuses"]:
            self.duplicates += 1
            return False
        if rank < state["top"]:
            self.stale += 1
            return False
        state["statuses"].add(ev["status"])
        state["top"] = max(state["top"], rank)
        return True

    def process(self, records: Iterable[Any]) -> tuple[list[Output], list[tuple[Any, str]]]:
        outputs: list[Output] = []
        dead: list[tuple[Any, str]] = []
        for record in records:
            try:
                events = self.decode(record)
            except Failure as exc:
                dead.append((record, exc.error_class))
                self.dead_letters[exc.error_class] += 1
                continue
            except NotReceipts:
                self.skipped += 1
                continue
            self.receipts += len(events)
            for ev in events:
                if self.admit(ev):
                    outputs.append(
                        Output(
                            f"{ev['provider']}:{ev['message_key']}".encode(),
                            json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode(),
                            [
                                ("event_id", ev["event_id"].encode()),
                                ("provider", ev["provider"].encode()),
                                ("status", ev["status"].encode()),
                            ],
                        )
                    )
        return outputs, dead

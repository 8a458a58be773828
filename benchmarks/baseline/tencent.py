"""Tencent Cloud: `PullSmsSendStatus` poll responses, callback pushes, `SendSms` results."""

from __future__ import annotations

import re
from typing import Any

from benchmarks.baseline._common import (
    DEFAULT_ZONES,
    Context,
    Failure,
    NotReceipts,
    ProviderFailure,
    Unknown,
    as_list,
    event,
    grouped,
    load_json,
    recipient,
    refine_failure,
    require,
    text_or_none,
    when,
)

# -- Tencent --------------------------------------------------------------------------------------

# The contract's Tencent section (docs/contract.md, "The providers", tencent, "Status")
# gives one outcome per `ReportStatus`; Tencent's PullSmsSendStatus documentation ("SMS
# delivery status details") names SUCCESS and FAIL, the contract adds UNKNOWN. A FAIL is then
# sorted "by code", the codes grouped by the status they lead to, "anything else → UNDELIVERED".
TENCENT_REPORT_OUTCOMES: dict[str, tuple[str, ...]] = {
    "DELIVERED": ("SUCCESS",),
    "UNDELIVERED": ("FAIL",),
    "UNKNOWN": ("UNKNOWN",),
}
TENCENT_FAIL_GROUPS: dict[str, tuple[str, ...]] = {
    "EXPIRED": ("EXPIRED",),
    "REJECTED": ("REJECTD",),
    "DELETED": ("DELETED",),
    "FAILED": ("SUBFAIL", "COMFAIL", "WTNFAIL"),
}


def tencent_status(raw: str, code: str | None) -> str:
    status = grouped(TENCENT_REPORT_OUTCOMES, raw) or "UNKNOWN"
    return refine_failure(status, code, TENCENT_FAIL_GROUPS)


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
                    provider_code=None,  # a submit has no carrier code (docs/contract.md)
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

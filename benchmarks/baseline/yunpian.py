"""Yunpian: form-encoded pushes, single or double encoded."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from benchmarks.baseline._common import (
    CARRIER_FAIL_GROUPS,
    DEFAULT_ZONES,
    Context,
    Failure,
    as_list,
    cn_rule,
    event,
    from_local,
    grouped,
    load_json,
    recipient,
    refine_failure,
    require,
    text_or_none,
)

# -- Yunpian --------------------------------------------------------------------------------------

# Yunpian's "Push Status Records" page, "Attention": "SUCCESS" means delivered, otherwise "FAIL";
# the contract's Yunpian section (docs/contract.md, "The providers", yunpian,
# `report_status`) adds UNKNOWN and refines a FAIL by `error_msg` (CARRIER_FAIL_GROUPS).
YUNPIAN_REPORT_OUTCOMES: dict[str, tuple[str, ...]] = {
    "DELIVERED": ("SUCCESS",),
    "UNDELIVERED": ("FAIL",),
    "UNKNOWN": ("UNKNOWN",),
}


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
        status = grouped(YUNPIAN_REPORT_OUTCOMES, report_status) or "UNKNOWN"
        status = refine_failure(status, code, CARRIER_FAIL_GROUPS)
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

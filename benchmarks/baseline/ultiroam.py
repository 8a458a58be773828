"""Ultiroam: `query_sms_result` poll responses, `sms_result` and `sms_deliver_status` pushes."""

from __future__ import annotations

from typing import Any

from benchmarks.baseline._common import (
    DEFAULT_ZONES,
    Context,
    Failure,
    NotReceipts,
    ProviderFailure,
    as_list,
    event,
    from_local,
    grouped,
    load_json,
    recipient,
    require,
    text_or_none,
)

# -- Ultiroam -------------------------------------------------------------------------------------

# The `status` values of Ultiroam's "Query SMS Sending Result" page (`result`: "FAILED, SENDING,
# SENT_OK and DELIVERED"), each read as the contract's Ultiroam section (docs/contract.md,
# "The providers", ultiroam, `status`) maps it, grouped by canonical status.
ULTIROAM_OUTCOMES: dict[str, tuple[str, ...]] = {
    "PENDING": ("SENDING",),
    "SENT": ("SENT_OK",),
    "DELIVERED": ("DELIVERED",),
    "FAILED": ("FAILED",),
}

# `status_code` is a GSM TP-Status; the Ultiroam page does not document it, the contract's
# Ultiroam section does, as inclusive ranges: written here the way it states them. A number in
# no range is a status value the tables do not know: UNKNOWN.
TP_STATUS_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 31, "DELIVERED"),
    (32, 63, "SENT"),
    (64, 95, "UNDELIVERED"),
    (96, 127, "EXPIRED"),
    (128, 255, "UNDELIVERED"),
)


def tp_status(code: int) -> str:
    for low, high, status in TP_STATUS_RANGES:
        if low <= code <= high:
            return status
    return "UNKNOWN"


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
            status = tp_status(code)
            provider_status = fields["provider_code"] = str(code)
        else:
            provider_status = require(item, "status", str)
            status = grouped(ULTIROAM_OUTCOMES, provider_status) or "UNKNOWN"
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

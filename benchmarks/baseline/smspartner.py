"""SMS Partner: `bulk-status` JSON and positional XML (any DOCTYPE refused)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from benchmarks.baseline._common import (
    DEFAULT_ZONES,
    Context,
    Failure,
    ProviderFailure,
    Unknown,
    Unsafe,
    as_list,
    event,
    fr_rule,
    grouped,
    load_json,
    recipient,
    when,
)

# -- SMS Partner ----------------------------------------------------------------------------------

# The contract's SMS Partner section (docs/contract.md, "The providers", smspartner,
# `status`); SMS Partner's bulk-status page ("Risposte") only shows `Delivered`.
SMSPARTNER_OUTCOMES: dict[str, tuple[str, ...]] = {
    "DELIVERED": ("Delivered",),
    "UNDELIVERED": ("Not delivered",),
    "SENT": ("Waiting",),
}
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
                grouped(SMSPARTNER_OUTCOMES, status) or "UNKNOWN",
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

"""Routing, dedupe and encoding: `DECODERS`, `sniff` and the `Baseline` class."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from benchmarks.baseline._common import (
    MAX_BODY_BYTES,
    RANKS,
    Context,
    Failure,
    NotReceipts,
    Output,
    TooLarge,
    Unknown,
    rfc3339,
)
from benchmarks.baseline.smspartner import smspartner
from benchmarks.baseline.tencent import tencent
from benchmarks.baseline.ultiroam import ultiroam
from benchmarks.baseline.uspeedo import uspeedo
from benchmarks.baseline.yunpian import yunpian

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
        """Events of one `pipeline.core.InputRecord`; raises Failure or NotReceipts."""
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

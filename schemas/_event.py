"""The canonical receipt event (v1): the contract of ``shared/receipt-event.md``."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

Provider = Literal["uspeedo", "ultiroam", "yunpian", "smspartner", "tencent"]
Channel = Literal["push", "poll", "submit"]
Status = Literal[
    "PENDING",
    "SENT",
    "DELIVERED",
    "UNDELIVERED",
    "EXPIRED",
    "REJECTED",
    "DELETED",
    "FAILED",
    "UNKNOWN",
]
Finality = Literal["intermediate", "soft_final", "final"]
EventId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
#: RFC 3339 UTC with `Z`, milliseconds only when non-zero.
Timestamp = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$",
        extra_json_schema={"format": "date-time"},
    ),
]

#: Provider ids in a fixed order; the index is the compact provider code used by the window.
PROVIDERS: Final[tuple[Provider, ...]] = ("uspeedo", "ultiroam", "yunpian", "smspartner", "tencent")
PROVIDER_INDEX: Final[dict[str, int]] = {p: i for i, p in enumerate(PROVIDERS)}

#: Statuses in a fixed order; the index is the compact status code used by the window.
STATUSES: Final[tuple[Status, ...]] = (
    "PENDING",
    "SENT",
    "UNKNOWN",
    "DELIVERED",
    "UNDELIVERED",
    "EXPIRED",
    "REJECTED",
    "DELETED",
    "FAILED",
)
STATUS_INDEX: Final[dict[str, int]] = {s: i for i, s in enumerate(STATUSES)}

#: Rank for the stale rule: PENDING 1 < SENT 2 < UNKNOWN 3 < every final 4.
RANK: Final[dict[str, int]] = {
    s: (1 if s == "PENDING" else 2 if s == "SENT" else 3 if s == "UNKNOWN" else 4) for s in STATUSES
}
FINALITY: Final[dict[str, Finality]] = {
    s: ("intermediate" if RANK[s] < 3 else "soft_final" if s == "UNKNOWN" else "final")
    for s in STATUSES
}


# gc=False: events hold only strings, numbers and a Source, never cycles; hundreds of thousands
# are created per second and GC tracking would only add collector passes.
class Source(msgspec.Struct, frozen=True, gc=False):
    """Where a report came from: the raw record and the report's position in its batch."""

    topic: str
    partition: int
    offset: int
    index: int


# Every field is required (also `v`), so the hot path can build events positionally.
class ReceiptEvent(msgspec.Struct, gc=False):
    """One status of one message to one recipient, in the canonical shape (v1)."""

    v: Literal[1]
    event_id: EventId
    provider: Provider
    account: str | None
    channel: Channel
    endpoint: str
    message_key: str
    message_id: str | None
    batch_id: str | None
    client_ref: str | None
    recipient: str
    recipient_raw: str
    status: Status
    finality: Finality
    provider_status: str
    provider_code: str | None
    provider_message: str | None
    segments: int | None
    segments_ok: int | None
    opt_out: bool | None
    occurred_at: Timestamp | None
    occurred_at_raw: str | None
    sent_at: Timestamp | None
    time_zone: str | None
    observed_at: Timestamp
    source: Source

"""The state record (v1): a message's lifecycle so far, the value of the state topic's records.

One record per change of a message's state, keyed like the output record; a compacted topic
keeps the newest per message, and `version` orders them for any upsert sink.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ._event import EventId, Finality, Provider, Status, Timestamp


class StatusSeen(msgspec.Struct, gc=False):
    """One status the message reached, in arrival order."""

    status: Status
    #: The event that reported it (the same id as on the output topic).
    event_id: EventId
    #: When it happened: the provider's time when it gave one, else when the report was
    #: received; to the second.
    at: Timestamp


class MessageState(msgspec.Struct, gc=False):
    """The current state of one message (v1)."""

    v: Literal[1]
    provider: Provider
    message_key: str
    #: Identity as the newest event gave it.
    account: str | None
    recipient: str
    message_id: str | None
    batch_id: str | None
    client_ref: str | None
    #: The highest rank reached; among finals, the first final.
    status: Status
    finality: Finality
    statuses: list[StatusSeen]
    #: Two different final statuses were reported.
    conflict: bool
    #: When the first report of the message was received (record time, to the second).
    first_seen_at: Timestamp
    #: The first PENDING's, SENT's (else the send time a report carried) and final's time.
    submitted_at: Timestamp | None
    sent_at: Timestamp | None
    final_at: Timestamp | None
    #: final_at - sent_at, else final_at - submitted_at, when both exist.
    delivery_latency_ms: int | None
    #: Grows with every change of this message's state (also after a restart): keep the highest.
    version: int
    #: The record time of the change.
    updated_at: Timestamp
    #: No final status within the final-timeout of the first report.
    timed_out: bool

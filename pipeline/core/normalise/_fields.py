"""Event assembly shared by every provider decoder: the event id and the canonical event.

The rules a provider applies to its fields live beside this module, one module per rule:
`_identity` (keys and ids), `_times`, `_numbers`, `_lookup` (statuses and codes), `_phones`.
"""

from __future__ import annotations

import hashlib
from typing import Final

from schemas import FINALITY, Channel, Provider, ReceiptEvent, Source, Status

from ._context import RecordContext

# The event id's hash: copying a configured state is cheaper than constructing one (parameter
# set-up) per report.
_EVENT_ID_HASH: Final = hashlib.blake2b(digest_size=16)


def event_id(provider: str, message_key: str, status: str) -> str:
    """The event id of one identity (what `make_event` computes inline for every report)."""
    digest = _EVENT_ID_HASH.copy()
    digest.update(f"{provider}\x1f{message_key}\x1f{status}".encode())
    return digest.hexdigest()


def make_event(
    ctx: RecordContext,
    provider: Provider,
    channel: Channel,
    endpoint: str,
    index: int,
    account: str | None,
    message_key: str,
    message_id: str | None,
    batch_id: str | None,
    client_ref: str | None,
    recipient: str,
    recipient_raw: str,
    status: Status,
    provider_status: str,
    provider_code: str | None,
    provider_message: str | None,
    segments: int | None,
    segments_ok: int | None,
    opt_out: bool | None,
    occurred_at: str | None,
    occurred_at_raw: str | None,
    sent_at: str | None,
    time_zone: str | None,
    /,
) -> ReceiptEvent:
    """Assemble one canonical event; the `account` header wins over what the body says.

    Positional only, in the event's field order: binding 17 keywords costs ~2 µs a call here,
    positional arguments ~0.2 µs, and this runs once per report. Ids (`message_id`, `batch_id`,
    `client_ref`) come from the id rules: None or non-empty text.
    """
    # event_id: 32 hex chars, a 128-bit digest of the dedupe identity, stable across processes.
    # Computed here, not in a function of its own: one call frame less per report. The unit
    # separator cannot be ambiguous: provider and status come from fixed sets without it.
    digest = _EVENT_ID_HASH.copy()
    digest.update(f"{provider}\x1f{message_key}\x1f{status}".encode())
    return ReceiptEvent(
        1,
        digest.hexdigest(),
        provider,
        ctx.account if ctx.account is not None else account,
        channel,
        endpoint,
        message_key,
        message_id,
        batch_id,
        client_ref,
        recipient,
        recipient_raw,
        status,
        FINALITY[status],
        provider_status,
        provider_code,
        provider_message,
        segments,
        segments_ok,
        opt_out,
        occurred_at,
        occurred_at_raw,
        sent_at,
        time_zone,
        ctx.observed_at,
        Source(ctx.topic, ctx.partition, ctx.offset, index),
    )

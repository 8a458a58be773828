"""Message lifecycle: a message's state, folded from the events the window emits for it. Pure.

The window keeps per message, beside its emitted statuses, a compact int of lifecycle data (a
`LifecycleWindow`); this module defines that data, folds an emitted event into it and builds
the state record (`schemas.MessageState`). Only EMIT verdicts are folded: a duplicate or stale
report changes no state and makes no state record.

Packed data, low bits first:

* bit 0: timed out; bits 1-34: the first report's record time, epoch seconds;
* then one entry per status reached, in arrival order, plus at most one send time carried by an
  event (Ultiroam's ``sent_at``): 2 bits width class (the delta takes 8, 16, 24 or 40 bits),
  the delta (the entry's time minus the first report's, seconds, zigzag-coded), 4 bits kind
  (status code + 1, or ``SEND_TIME``; never 0, so the data of a message is never 0).

Three statuses within 9 hours of the first report take 35 + 3 x 22 = 101 bits, 110 with the
window's 9-bit mask: one 40-byte int object per message (up to 120 bits; window_bench.py).
Times are kept to the second: providers report seconds, and a message's times fit 16 bits so.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from datetime import date
from itertools import compress, repeat
from typing import Final, Protocol

import msgspec

from schemas import (
    FINALITY,
    PROVIDERS,
    RANK,
    STATUS_INDEX,
    STATUSES,
    MessageState,
    Provider,
    Status,
    StatusSeen,
)

from ._records import OutputRecord
from ._timeouts import Timeouts, has_final
from ._verdicts import _IS_EMITTED, DedupeWindow
from .normalise import event_id, format_epoch_ms, format_epoch_s

#: Entry kind of a send time that an event carried (not a status).
SEND_TIME: Final = 10
_SENT: Final = STATUS_INDEX["SENT"] + 1
_PENDING: Final = STATUS_INDEX["PENDING"] + 1
_FIRST_BITS: Final = 34
#: The time-out flag of the packed data (bit 0).
_TIMED_OUT: Final = 1
#: Where the entries start: above the time-out flag and the first report's time.
_ENTRIES_AT: Final = _FIRST_BITS + 1
_WIDTHS: Final = (8, 16, 24, 40)
_MAX_DELTA: Final = (1 << 39) - 1
_RANKS: Final = tuple(RANK[s] for s in STATUSES)
_FINALITIES: Final = tuple(FINALITY[s] for s in STATUSES)
_FINAL_STATUSES: Final = frozenset(s for s in STATUSES if FINALITY[s] == "final")
#: One version step per change of a message's state: at most 9 statuses and one time-out.
VERSION_STEPS: Final = 16


class LifecycleWindow(DedupeWindow, Protocol):
    """A dedupe window that also keeps each message's lifecycle data."""

    @property
    def clock(self) -> int:
        """The window's time (ms), never moving back."""
        ...

    def state_of(self, h: int) -> int:
        """The data held for message `h`, 0 when none."""
        ...

    def set_state(self, h: int, data: int) -> None:
        """Hold `data` for message `h`."""
        ...


class MessageIdentity(Protocol):
    """Who a state record is about."""

    @property
    def provider(self) -> Provider: ...
    @property
    def message_key(self) -> str: ...
    @property
    def account(self) -> str | None: ...
    @property
    def recipient(self) -> str: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def batch_id(self) -> str | None: ...
    @property
    def client_ref(self) -> str | None: ...


class EventFacts(MessageIdentity, Protocol):
    """What a state record needs of an event (a `ReceiptEvent` has it all)."""

    @property
    def event_id(self) -> str: ...
    @property
    def status(self) -> Status: ...
    @property
    def occurred_at(self) -> str | None: ...
    @property
    def sent_at(self) -> str | None: ...


class Facts(msgspec.Struct, gc=False):
    """The fields of an output record's value (an event) that a state record reads: decoded
    from the value when the event itself is not at hand (the dedupe stage, a restore)."""

    provider: Provider
    message_key: str
    status: Status
    recipient: str
    event_id: str = ""
    account: str | None = None
    message_id: str | None = None
    batch_id: str | None = None
    client_ref: str | None = None
    occurred_at: str | None = None
    sent_at: str | None = None


_FACTS: Final = msgspec.json.Decoder(Facts)


class Identity(msgspec.Struct, gc=False, array_like=True):
    """A waiting message's identity, kept for its timed-out state record."""

    provider: Provider
    message_key: str
    account: str | None
    recipient: str
    message_id: str | None
    batch_id: str | None
    client_ref: str | None


_IDENTITY: Final = msgspec.json.Decoder(Identity)


def _facts(
    values: Sequence[bytes], keys: Sequence[bytes], stamps: Sequence[int]
) -> tuple[list[Facts], list[bytes], list[int]]:
    """The facts of the values that are events, with their keys and stamps (a value that is
    not one of ours gets no state)."""
    facts: list[Facts] = []
    kept_keys: list[bytes] = []
    kept_stamps: list[int] = []
    decode = _FACTS.decode
    for value, key, stamp in zip(values, keys, stamps, strict=True):
        try:
            facts.append(decode(value))
        except msgspec.DecodeError:
            continue
        kept_keys.append(key)
        kept_stamps.append(stamp)
    return facts, kept_keys, kept_stamps


#: Upper bounds (s) of the delivery-latency histogram's buckets.
LATENCY_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400)


class LifecycleCounters:
    """What the lifecycles of a process counted, by provider (and status): shared by the
    windows of a stage, so a window dropped at a rebalance takes nothing away."""

    __slots__ = ("conflicts", "finals", "forgotten", "latency", "latency_sum", "timed_out")

    def __init__(self) -> None:
        #: Messages that reached their first final status, by (provider, status).
        self.finals: Counter[tuple[str, str]] = Counter()
        #: A second, different final status for a message.
        self.conflicts: Counter[str] = Counter()
        #: Time-outs fired.
        self.timed_out: Counter[str] = Counter()
        #: Messages the window forgot (its count bound) while they waited for their final.
        self.forgotten: Counter[str] = Counter()
        #: Delivery latency at the first final: per provider, a count per bucket of
        #: LATENCY_BUCKETS and one above; and their sum (s).
        self.latency: dict[str, list[int]] = {
            p: [0] * (len(LATENCY_BUCKETS) + 1) for p in PROVIDERS
        }
        self.latency_sum: dict[str, float] = dict.fromkeys(PROVIDERS, 0.0)

    def final(self, provider: str, state: MessageState) -> None:
        """`state` was made by a final status (its newest)."""
        if state.conflict:
            self.conflicts[provider] += 1
            return
        self.finals[provider, state.status] += 1
        latency = state.delivery_latency_ms
        if latency is not None:
            seconds = max(0, latency) / 1000
            self.latency[provider][bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum[provider] += seconds


class Unpacked(msgspec.Struct, gc=False):
    """Packed data spelled out: time-out flag, first report (epoch s), entries (kind, epoch s).
    A struct: made once per state record, and msgspec makes it in C."""

    timed_out: bool
    first: int
    entries: list[tuple[int, int]]


def unpack(data: int) -> Unpacked:
    first = data >> 1 & ((1 << _FIRST_BITS) - 1)
    rest = data >> (_FIRST_BITS + 1)
    entries: list[tuple[int, int]] = []
    while rest:
        width = _WIDTHS[rest & 3]
        zigzag = rest >> 2 & ((1 << width) - 1)
        rest >>= 2 + width
        entries.append((rest & 15, first + (zigzag >> 1 if not zigzag & 1 else -(zigzag >> 1) - 1)))
        rest >>= 4
    return Unpacked(bool(data & _TIMED_OUT), first, entries)


def _entry(kind: int, at: int, first: int) -> tuple[int, int]:
    """One entry's bits (`kind` at epoch second `at`, lowest bit first) and its width."""
    delta = at - first
    if delta >= 0:
        zigzag = (delta if delta < _MAX_DELTA else _MAX_DELTA) << 1
    else:
        zigzag = (-delta if delta > -_MAX_DELTA else _MAX_DELTA) * 2 - 1
    if zigzag < 256:
        return zigzag << 2 | kind << 10, 14
    if zigzag < 65536:
        return 1 | zigzag << 2 | kind << 18, 22
    if zigzag < 1 << 24:
        return 2 | zigzag << 2 | kind << 26, 30
    return 3 | zigzag << 2 | kind << 42, 46


def pack(state: Unpacked) -> int:
    data = int(state.timed_out) | state.first << 1
    shift = _ENTRIES_AT
    for kind, at in state.entries:
        bits, width = _entry(kind, at, state.first)
        data |= bits << shift
        shift += width
    return data


def fold(data: int, event: EventFacts, stamp: int, clock: int) -> tuple[int, Unpacked]:
    """(the data, the state) of a message whose data is `data` (0: one the window did not
    hold) after emitting `event`, received at record time `stamp` (ms). A stamp ahead of the
    window's clock `clock` (ms; the window ignored it as too far ahead of the wall clock)
    counts as that clock: a record stamped years ahead must not put off a time-out."""
    kind = STATUS_INDEX[event.status] + 1
    observed = (stamp if stamp <= clock or not clock else clock) // 1000
    occurred, sent = event.occurred_at, event.sent_at
    at = observed if occurred is None else epoch_s(occurred)
    if data:
        state = unpack(data)
        entries = state.entries
        entries.append((kind, at))
        if sent is not None and not any(k in (_SENT, SEND_TIME) for k, _ in entries):
            entries.append((SEND_TIME, epoch_s(sent)))
        return pack(state), state
    # A message's first status: its data in a few shifts.
    first = observed if observed > 0 else 0
    bits, width = _entry(kind, at, first)
    data = first << 1 | bits << _ENTRIES_AT
    if sent is None or kind == _SENT:
        return data, Unpacked(False, first, [(kind, at)])
    sent_s = epoch_s(sent)
    data |= _entry(SEND_TIME, sent_s, first)[0] << (_ENTRIES_AT + width)
    return data, Unpacked(False, first, [(kind, at), (SEND_TIME, sent_s)])


def first_state(
    event: EventFacts, eid: str, stamp: int, clock: int, base: int, updated_at: str
) -> tuple[int, int, MessageState]:
    """(the data, the first report's epoch second, the state record) of a message the window
    held no data for, after emitting `event` (id `eid`): `fold` and `message_state` of its one
    status, without the general loop (most state records are a message's first). The packing
    repeats `fold`'s first-status branch inline: a shared helper measured ~1 200 instructions
    more per state record (a frame and a tuple); the property test holds the two equal."""
    code = STATUS_INDEX[event.status]
    kind = code + 1
    observed = (stamp if stamp <= clock or not clock else clock) // 1000
    occurred, sent = event.occurred_at, event.sent_at
    at = observed if occurred is None else epoch_s(occurred)
    first = observed if observed > 0 else 0
    bits, width = _entry(kind, at, first)
    data = first << 1 | bits << _ENTRIES_AT
    times = _TIMES
    at_text = times.get(at) or _time(at)
    start = submitted_at = sent_at = final_at = latency = None
    if kind == _SENT:
        start, sent_at = at, at_text
    elif sent is not None:
        start = epoch_s(sent)
        data |= _entry(SEND_TIME, start, first)[0] << (_ENTRIES_AT + width)
        sent_at = times.get(start) or _time(start)
    if kind == _PENDING:
        submitted_at = at_text
    elif _RANKS[code] == 4:
        final_at = at_text
        if start is not None:
            latency = (at - start) * 1000
    status = event.status
    return (
        data,
        first,
        MessageState(
            1,
            event.provider,
            event.message_key,
            event.account,
            event.recipient,
            event.message_id,
            event.batch_id,
            event.client_ref,
            status,
            _FINALITIES[code],
            [StatusSeen(status, eid, at_text)],
            False,
            times.get(first) or _time(first),
            submitted_at,
            sent_at,
            final_at,
            latency,
            base + 1,
            updated_at,
            False,
        ),
    )


#: RFC 3339 text by epoch second: the times of a stream repeat (a dict, cleared when full,
#: cheaper than an lru_cache behind a call).
_TIMES: dict[int, str] = {}


def _time(seconds: int) -> str:
    text = _TIMES.get(seconds)
    if text is None:
        if len(_TIMES) >= 65536:
            _TIMES.clear()
        text = _TIMES[seconds] = format_epoch_s(max(0, seconds))
    return text


def message_state(
    facts: MessageIdentity,
    state: Unpacked,
    base: int,
    updated_at: str,
    known: tuple[str, str] | None = None,
) -> MessageState:
    """The state record of `state`, identity from `facts` (the event that changed it), its
    version `base` plus one per change, `updated_at` the change's record time; ``known``:
    (status, event id) of that event, so its digest is not computed again."""
    provider, key = facts.provider, facts.message_key
    times = _TIMES
    seen: list[StatusSeen] = []
    best = best_rank = -1
    finals = 0
    changes = int(state.timed_out)
    submitted = sent = final = sent_carried = None
    for kind, at in state.entries:
        if kind == SEND_TIME:
            sent_carried = at
            continue
        changes += 1
        code = kind - 1
        name = STATUSES[code]
        eid = known[1] if known is not None and known[0] == name else event_id(provider, key, name)
        seen.append(StatusSeen(name, eid, times.get(at) or _time(at)))
        rank = _RANKS[code]
        if rank > best_rank:
            best, best_rank = code, rank
        if rank == 4:
            finals += 1
            if final is None:
                final = at
        elif kind == _PENDING:
            if submitted is None:
                submitted = at
        elif kind == _SENT and sent is None:
            sent = at
    if sent is None:
        sent = sent_carried
    start = sent if sent is not None else submitted
    status = STATUSES[best]
    return MessageState(
        1,
        provider,
        key,
        facts.account,
        facts.recipient,
        facts.message_id,
        facts.batch_id,
        facts.client_ref,
        status,
        _FINALITIES[best],
        seen,
        finals > 1,
        times.get(state.first) or _time(state.first),
        None if submitted is None else times.get(submitted) or _time(submitted),
        None if sent is None else times.get(sent) or _time(sent),
        None if final is None else times.get(final) or _time(final),
        None if final is None or start is None else (final - start) * 1000,
        base + changes,
        updated_at,
        state.timed_out,
    )


def _updated_at(stamp_ms: int) -> str:
    return format_epoch_ms(stamp_ms if stamp_ms > 0 else 0)


_ENCODER: Final = msgspec.json.Encoder()
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
#: Epoch seconds by text: the reports of a stream share their seconds (a dict, cleared when full).
_SECONDS: dict[str, int] = {}


def epoch_s(text: str) -> int:
    """Epoch seconds of an event's RFC 3339 UTC time (``2014-03-17T14:55:21Z``, maybe with
    milliseconds)."""
    seconds = _SECONDS.get(text)
    if seconds is None:
        if len(_SECONDS) >= 65536:
            _SECONDS.clear()
        day = date.fromisoformat(text[:10]).toordinal() - _EPOCH_ORDINAL
        seconds = _SECONDS[text] = (
            day * 86400 + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
        )
    return seconds


class Lifecycle:
    """Folds the emitted events of each batch into their messages' states, in `window`, and
    makes their state records (same key and timestamp as the event's output record)."""

    def __init__(
        self,
        window: LifecycleWindow,
        timeouts: Timeouts | None = None,
        counters: LifecycleCounters | None = None,
    ) -> None:
        """``timeouts``: the window's waiting messages (they time out by :meth:`expire`);
        ``counters``: where to count (shared by a stage's windows), else a new one."""
        self.window = window
        self.timeouts = timeouts
        self.counters = LifecycleCounters() if counters is None else counters
        self._encode = _ENCODER.encode

    def _track(self, h: int, key: bytes, event: MessageIdentity, first: int, waits: bool) -> None:
        """Keep the waiting messages: a message first reported at epoch second `first` waits
        while it has no final and has not timed out (`waits`)."""
        timeouts = self.timeouts
        if timeouts is None:
            return
        if not waits:
            timeouts.done(event.provider, h)
            return
        identity = Identity(
            event.provider,
            event.message_key,
            event.account,
            event.recipient,
            event.message_id,
            event.batch_id,
            event.client_ref,
        )
        dropped = timeouts.wait(event.provider, h, first, key, self._encode(identity))
        if dropped is not None:
            self.counters.forgotten[dropped] += 1

    def expire(self, emit: bool = True, idle_ms: int | None = None) -> list[OutputRecord]:
        """Time out the waiting messages whose deadline the window's clock reached: each gets
        its state record (timestamp its deadline), once. ``emit`` False (after a restore: they
        timed out before) marks them timed out and makes no record. ``idle_ms``: a later clock
        to time out by (an idle partition's, from the wall clock); the window's own clock, which
        dedupes by record time, is not moved, and versions stay on it."""
        timeouts = self.timeouts
        if timeouts is None:
            return []
        window = self.window
        clock = window.clock
        out: list[OutputRecord] = []
        due = clock if idle_ms is None else max(clock, idle_ms)
        for provider, h, waiting in timeouts.due(due):
            data = window.state_of(h)
            if not data:
                self.counters.forgotten[provider] += 1  # evicted by count before its final
                continue
            state = unpack(data)
            if state.timed_out or has_final(state.entries):
                continue
            state.timed_out = True
            window.set_state(h, pack(state))
            if not emit:
                continue
            self.counters.timed_out[provider] += 1
            identity = _IDENTITY.decode(waiting.identity)
            record = message_state(
                identity, state, clock * VERSION_STEPS, _updated_at(waiting.deadline)
            )
            out.append(OutputRecord(waiting.key, self._encode(record), [], waiting.deadline))
        return out

    def fired_before(self, keys: Sequence[bytes], stamps: Sequence[int]) -> int:
        """Mark timed out, making no record (as :meth:`expire` with ``emit`` False), the waiting
        messages whose time-out fired before a restore: `keys` and `stamps` of state records
        read back from the state topic that say ``timed_out``. How many were still waiting."""
        timeouts = self.timeouts
        if timeouts is None or not keys:
            return 0
        window = self.window
        marked = 0
        for h, stamp in zip(window.hashes(keys), stamps, strict=True):
            if timeouts.take(h, stamp) is None:
                continue
            marked += 1
            data = window.state_of(h)
            if data:
                window.set_state(h, data | _TIMED_OUT)
        return marked

    def states(
        self,
        events: Sequence[EventFacts],
        keys: Sequence[bytes],
        verdicts: bytes | bytearray,
        stamps: Sequence[int],
    ) -> list[OutputRecord]:
        """One state record per emitted event (EMIT verdict), in order; nothing for the rest."""
        emit = verdicts.translate(_IS_EMITTED)
        return self.emitted(
            list(compress(events, emit)), list(compress(keys, emit)), list(compress(stamps, emit))
        )

    def emitted_values(
        self, values: Sequence[bytes], keys: Sequence[bytes], stamps: Sequence[int]
    ) -> list[OutputRecord]:
        """:meth:`emitted` of output records' values (events as JSON) the window just passed."""
        return self.emitted(*_facts(values, keys, stamps))

    def replay(self, values: Sequence[bytes], keys: Sequence[bytes], stamps: Sequence[int]) -> None:
        """Fold output records already written (a restore from the output topic, in order) into
        their messages' data, making no records; a status already held is not folded again."""
        facts, keys, stamps = _facts(values, keys, stamps)
        if not facts:
            return
        window = self.window
        state_of, set_state, clock = window.state_of, window.set_state, window.clock
        index = STATUS_INDEX
        for event, key, h, stamp in zip(facts, keys, window.hashes(keys), stamps, strict=True):
            data = state_of(h)
            kind = index[event.status] + 1
            if data and any(k == kind for k, _ in unpack(data).entries):
                continue
            data, state = fold(data, event, stamp, clock)
            set_state(h, data)
            waits = not state.timed_out and not has_final(state.entries)
            self._track(h, key, event, state.first, waits)

    def emitted(
        self, events: Sequence[EventFacts], keys: Sequence[bytes], stamps: Sequence[int]
    ) -> list[OutputRecord]:
        """State records of events the window has just emitted (all of them), in order."""
        if not events:
            return []
        window = self.window
        clock = window.clock
        base = clock * VERSION_STEPS
        state_of, set_state, track = window.state_of, window.set_state, self._track
        counters = self.counters
        values: list[bytes] = []
        value = values.append
        # One buffer that keeps its size (as the encode stage's): `encode` would grow each
        # record's from small by realloc.
        buffer = bytearray()
        into = _ENCODER.encode_into
        timeouts = self.timeouts
        done = None if timeouts is None else timeouts.done
        stamped, updated_at = -1, ""  # the records of a batch share their stamps
        for event, key, h, stamp in zip(events, keys, window.hashes(keys), stamps, strict=True):
            if stamp != stamped:
                stamped, updated_at = stamp, _updated_at(stamp)
            data = state_of(h)
            eid = event.event_id or event_id(event.provider, event.message_key, event.status)
            if data:
                data, state = fold(data, event, stamp, clock)
                record = message_state(event, state, base, updated_at, (event.status, eid))
                first, timed_out = state.first, state.timed_out
            else:
                data, first, record = first_state(event, eid, stamp, clock, base, updated_at)
                timed_out = False
            set_state(h, data)
            if record.final_at is None:
                track(h, key, event, first, not timed_out)
            elif done is not None:
                done(event.provider, h)
            if event.status in _FINAL_STATUSES:
                counters.final(event.provider, record)
            into(record, buffer)
            value(bytes(buffer))
        # tuple.__new__ skips the named tuple's Python-level __new__.
        headers: list[list[tuple[str, bytes]]] = [[] for _ in values]
        columns = zip(keys, values, headers, stamps, strict=True)
        return list(map(tuple.__new__, repeat(OutputRecord), columns))

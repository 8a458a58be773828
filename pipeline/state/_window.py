"""The bounded dedupe window: which statuses were already emitted for each message.

Pure and I/O-free. Identity is ``(provider, message_key, status)``; per message the window
remembers the set of emitted statuses. For each event, in order: a status already emitted for
its message is a DUPLICATE; a status whose rank is below the highest rank emitted for the
message is STALE; anything else is EMITted and remembered (two different finals both emit).
Events earlier in the same batch count as emitted.

Design
------
* Messages are keyed by a 60-bit integer (:func:`message_hash` of the output record key
  ``b"<provider>:<message_key>"``): 60 bits keep every key a 32-byte int object (the window
  keeps the caller's int objects as its dict keys). The value is the 9-bit emitted-status
  mask, always one of the pre-built ints of ``_VALUES`` so values cost no memory per message
  (unless it keeps lifecycle data: see below).
* Messages live in a ring of generations, one plain dict each, newest first. New messages go
  into the current generation, which rotates once it has taken ``ceil(max/G)`` inserts or spans
  ``ttl/G`` of time. A message emitting a new status from an older generation is *moved* into
  the current one: the window then holds exactly the messages with an emission among the recent
  ones, which is what a rebuild from the tail of the output topic (the dedupe log) reconstructs,
  and a message keeps being remembered for ``ttl`` after its *last* emission. Duplicates and
  stale reports do not move anything, so the state is a function of the emitted events only.
* The count bound is on slots: every insert (new message or move) takes a slot in the current
  generation; a moved message leaves a dead slot behind (its key object is freed at once, the
  dict slot when its generation retires). Before an insert would exceed ``max_messages`` slots
  the oldest generation is retired (``evicted_by_count``). So ``len(window) <= max_messages``
  always, and memory stays bounded whatever the input; with many moves fewer distinct messages
  than ``max_messages`` may be held.
* Time is the callers' ``now_ms`` (record timestamps), max'ed so it never moves back: replays
  behave as live. A generation retires as ``expired`` once ``now - newest >= ttl`` where newest
  is the time of its last insert. So an emission is remembered for at least ``ttl`` (unless
  evicted by count) and forgotten at most about ``ttl + ttl/G`` later: eviction granularity is
  one generation (``max/G`` messages or ``ttl/G`` of time).
* Lookups try the current generation first (most reports are for recent messages). Beyond it,
  a hint table (one byte per bucket, 4 to 8 buckets per message) records per ``hash & mask``
  bucket the generation tag of the last insert into that bucket. A key is held only in a
  generation no newer than its bucket's tag, so most new messages are known absent after one
  byte read instead of a miss in every generation, and older messages are probed from the
  right generation on. Tags age out by themselves: retiring a generation never touches the
  table.
* Retiring a generation is O(1): per-provider live counts are kept per generation (for the
  eviction counters; the hot loop writes a code per event and the counts are derived from the
  codes in C), and its dict joins a backlog that each call releases by a bounded number of
  ``popitem()`` (never ``next(iter(d))``, which is O(n) after deletions from the front). No
  call does O(max_messages) work; the largest single cost is CPython growing the current
  generation's dict (``max/G`` entries).

Limits
------
* Hash collisions: two messages with the same 60-bit hash share one entry (a status of one would
  dedupe or stale the other). With n messages held the probability of any collision is about
  ``n**2 / 2**61``: 1.1e-5 at 5 M messages. Each new message meets a held one with probability
  ``n / 2**60`` (4.3e-12 at 5 M): about one wrongly dropped report per 2.3e11 new messages.
* The hash is Python's own keyed SipHash (``hash(bytes)``): about 0.05 µs per key against 0.6 µs
  for BLAKE2b, and its per-process random key means nobody who controls message keys can aim
  collisions. It is not stable across processes, so hashes must be computed in the process that
  holds the window (:meth:`Window.hashes` does it for the window at hand).
* A window that must outlive its process (:meth:`Window.dump`, a snapshot) cannot use it: the
  next process has another key. Such a window is made with its own ``hash_key`` (random bytes,
  kept in the dump) and hashes with keyed BLAKE2s, as collision-resistant but about 0.3 µs per
  key dearer; a window without ``hash_key`` cannot be dumped.

Lifecycle data
--------------
A window made with ``lifecycle=True`` also keeps, per message, the core's packed lifecycle data
(pipeline/core/_lifecycle.py), an int stored above the status mask in the same value
(``data << 9 | mask``): the hot loop reads ``v & 511`` and keeps the bits above on an update or
a move; :meth:`Window.set_state` and :meth:`Window.state_of` write and read them for the emitted
events only. Such a value is its own 48-byte int object (pymalloc's 16-byte classes: 61 to 180
bits), paid for by a hint table of 2 to 4 buckets per message instead of 4 to 8.

Serialisation
-------------
:meth:`Window.dump` writes the whole state in bulk (struct header, one ``array`` of keys and one
of values over all generations, the hint table as is); :meth:`Window.restore` rebuilds the dicts
in C (``dict(zip(keys, map(values)))``) with the interned values, and checks what it can check
cheaply (sizes, ranges, tags, per-generation books). It does not detect every corruption (a
wrong hint byte): callers check a checksum first (pipeline/state/_snapshot.py).

Clock
-----
Window time is record time, guarded (:meth:`Window.guarded_now`): a record stamped more than a
tolerance ahead of the wall clock does not advance the window's clock (it is still processed,
and counted in ``counters.clock_skew``), so one bad timestamp can neither expire the window nor
pin it; stamps in the past never move it back (see above).
"""

from __future__ import annotations

import copy
import hashlib
import struct
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat, starmap
from typing import Final, Self

from schemas import PROVIDERS, RANK, STATUSES

from ..core import DUPLICATE, EMIT, STALE

__all__ = [
    "Window",
    "WindowCounters",
    "message_hash",
    "message_hashes",
]


_NS: Final = len(STATUSES)  # 9 status codes, 0..8
_NP: Final = len(PROVIDERS)
_RANKS: Final = tuple(RANK[s] for s in STATUSES)
_STATUS_CODES: Final = bytes(range(_NS))
_PROVIDER_CODES: Final = bytes(range(_NP))
_MAX_GENERATIONS: Final = 64
#: Live generations stay far below this (at most G full ones, plus about G + 2 rotated by time,
#: which are >= ttl/G apart), so their 8-bit tags differ.
_MAX_LIVE: Final = 250

# Per-event codes the hot loop writes; 0 and 3 both become EMIT in the returned verdicts.
_EMIT_IN_PLACE: Final = 0
_INSERTED: Final = 3
_VERDICT: Final = bytes([EMIT, DUPLICATE, STALE, EMIT]) + bytes(252)
_TIMES4: Final = bytes((4 * i) & 255 for i in range(256))

#: Interned value objects: every stored value is one of these (no per-message int objects),
#: unless the message carries lifecycle data (see "Lifecycle data").
_VALUES: Final = tuple(range(1 << _NS))
#: The emitted-status mask: the low bits of every value (511 is spelled out in the hot loop).
_MASK_BITS: Final = (1 << _NS) - 1
if _MASK_BITS != 511:  # the hot loop spells out 511 and 9 (no global look-ups there)
    raise ImportError("the window's hot loop assumes 9 status codes")
#: Value of a new message with status s.
_NEW: Final = tuple(_VALUES[1 << s] for s in range(_NS))


def _verdict(mask: int, s: int) -> int:
    if mask >> s & 1:
        return DUPLICATE
    top = max((_RANKS[t] for t in range(_NS) if mask >> t & 1), default=0)
    return STALE if _RANKS[s] < top else EMIT


# Tables indexed by ``mask << 4 | status`` (16 slots per mask; statuses 9..15 are never used).
# Tuples, not bytes: CPython 3.11 specialises tuple[int] subscripts in the hot loop.
_CHECK: Final = tuple(
    _verdict(m, s) if s < _NS else DUPLICATE for m in range(1 << _NS) for s in range(16)
)
#: For load_batch: anything not yet marked is marked (the output topic is the truth).
_LOAD: Final = tuple(
    (m >> s & 1) if s < _NS else DUPLICATE for m in range(1 << _NS) for s in range(16)
)
_NEXT: Final = tuple(
    _VALUES[m | (1 << s)] if s < _NS else _VALUES[m] for m in range(1 << _NS) for s in range(16)
)

_consume: Final[Callable[[Iterable[object]], None]] = deque[object](maxlen=0).extend  # in C

# 60 bits fit two 30-bit digits: a 32-byte int object. ``& mask`` allocates the result at that
# size; ``>> 4`` would not (CPython sizes a shift's result from its 3-digit operand, so each key
# would take a 48-byte block). Same for random.getrandbits(60).
_MASK60: Final = (1 << 60) - 1


def message_hash(key: bytes) -> int:
    """60-bit hash of the output record key ``b"<provider>:<message_key>"``.

    The key must hold everything that identifies the message (the account too, if message keys
    are only unique per account): the window's identity is (key, status). Salted per process
    (see Limits): compute it in the process that holds the window.
    """
    return hash(key) & _MASK60


def message_hashes(keys: Sequence[bytes]) -> list[int]:
    """:func:`message_hash` of each key (a loop with local aliases, for rebuilds)."""
    mask = _MASK60
    return [hash(k) & mask for k in keys]


#: The per-provider counts of `WindowCounters`.
_COUNTS: Final = ("emitted", "duplicates", "stale", "evicted_by_count", "expired")


class WindowCounters:
    """Per-provider counters, lists indexed by provider code (``PROVIDER_INDEX``), and the
    clock-skew count (an int)."""

    __slots__ = ("clock_skew", "duplicates", "emitted", "evicted_by_count", "expired", "stale")

    def __init__(self) -> None:
        #: Records stamped too far ahead of the wall clock to move the window's clock.
        self.clock_skew = 0
        self.emitted: list[int] = [0] * _NP
        self.duplicates: list[int] = [0] * _NP
        self.stale: list[int] = [0] * _NP
        self.evicted_by_count: list[int] = [0] * _NP
        self.expired: list[int] = [0] * _NP

    def add(self, other: WindowCounters) -> None:
        """Count `other`'s counts here too (a window dropped: its counts must not vanish)."""
        self.clock_skew += other.clock_skew
        for name in _COUNTS:
            mine = getattr(self, name)
            mine[:] = map(sum, zip(mine, getattr(other, name), strict=True))

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{"emitted": {"uspeedo": n, ...}, "duplicates": {...}, ...}``."""
        return {name: dict(zip(PROVIDERS, getattr(self, name), strict=True)) for name in _COUNTS}


#: Keyed BLAKE2s takes keys of up to 32 bytes; fewer than 16 would be a weak key.
_MIN_KEY: Final = 16
_MAX_KEY: Final = 32
_MAGIC: Final = b"DWIN"
_FORMAT: Final = 3
#: Format 2 (no lifecycle data) is still read: its messages come back with their masks only.
_FORMAT_NO_STATES: Final = 2
_MAGIC_HEAD: Final = struct.Struct("<4sH")
#: magic, format, max_messages, ttl_ms, generations, now, current tag, generations held,
#: hint table size, hash key length, whether the hints are compressed, (format 3:) bytes of
#: lifecycle data; then the key.
_HEADS: Final = {
    _FORMAT_NO_STATES: struct.Struct("<4sHQQHqBHQBB"),
    _FORMAT: struct.Struct("<4sHQQHqBHQBBQ"),
}
_HEAD: Final = _HEADS[_FORMAT]
#: Per generation (newest first): tag, slots taken, first, newest, entries, live per provider.
#: Then all keys (int64) and all masks (uint16), generation after generation, then (format 3)
#: the lifecycle data: how many messages carry some (uint64), their positions among the
#: entries (uint32), each one's length in bytes (uint8) and the bytes; then the hints.
_GEN: Final = struct.Struct(f"<BQqqQ{_NP}Q")
#: The hint table is sized by capacity (4 to 8 bytes a message); a window holding fewer than
#: one message per this many bytes of it is mostly zeros there, and its dump stores the hints
#: zlib-compressed, so a dump is sized by what the window holds (1 message: kilobytes, not
#: the tens of MiB of a full one).
_SPARSE: Final = 16


def _hint_size(max_messages: int, per_message: int = 4) -> int:
    """Hint buckets: a power of two, 4 to 8 per message: 12-22% of new messages find their
    bucket taken by a live key and need dict probes (1 - e**(-messages/buckets)). A window
    that keeps lifecycle data takes 2 to 4 (22-39%): its data's 48-byte int per message is
    paid for with 3.4 of the hint's bytes (benchmarks/window_bench.py)."""
    size = 1024
    while size < per_message * max_messages:
        size <<= 1
    return size


class _Gen:
    """One generation: its dict, per-provider live counts, inserts taken, time span."""

    __slots__ = ("counts", "d", "first", "n", "newest", "tag")

    def __init__(self, tag: int, now: int) -> None:
        self.tag = tag  # written to the hint buckets of the keys inserted here
        self.d: dict[int, int] = {}
        self.counts: list[int] = [0] * _NP
        self.n = 0  # slots taken (inserts), including those vacated by moves
        self.first = now
        self.newest = now


def _positive_int(name: str, value: object, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be at most {upper}, got {value!r}")
    return value


class Window:
    """Bounded dedupe window; see the module docstring."""

    def __init__(
        self,
        max_messages: int = 5_000_000,
        ttl_ms: int = 86_400_000,
        generations: int = 8,
        hash_key: bytes | None = None,
        lifecycle: bool = False,
    ) -> None:
        """``hash_key`` (16 to 32 random bytes, e.g. ``os.urandom(16)``): hash with keyed BLAKE2s
        instead of the per-process ``hash()``, so the window can be dumped and restored in
        another process (see the module docstring). ``lifecycle``: the window will keep
        lifecycle data (:meth:`set_state`), and sizes its hint table for it (`_hint_size`)."""
        self.lifecycle: Final = lifecycle
        self.max_messages: Final = _positive_int("max_messages", max_messages)
        self.ttl_ms: Final = _positive_int("ttl_ms", ttl_ms)
        self.generations: Final = _positive_int("generations", generations, _MAX_GENERATIONS)
        if hash_key is not None and not (
            isinstance(hash_key, bytes) and _MIN_KEY <= len(hash_key) <= _MAX_KEY
        ):
            raise ValueError(f"hash_key must be {_MIN_KEY} to {_MAX_KEY} bytes")
        self.hash_key: Final = hash_key
        self._blake = None if hash_key is None else hashlib.blake2s(digest_size=8, key=hash_key)
        self._cap = -(-self.max_messages // self.generations)  # inserts per generation
        self._span = max(1, self.ttl_ms // self.generations)  # time per generation
        self.counters = WindowCounters()
        self.clear()

    # -- public API ------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every message (to be rebuilt); the counters go on counting."""
        self._hint = bytearray(_hint_size(self.max_messages, 2 if self.lifecycle else 4))
        self._hint_mask = len(self._hint) - 1
        self._now = -(1 << 62)  # no time seen yet
        self._tag = 1  # of the current generation; bucket tag 0 means "never written"
        self._ring: list[_Gen] = [_Gen(self._tag, self._now)]  # newest first
        self._dicts: list[dict[int, int]] = []  # views of the ring for the hot loop
        self._counts: list[list[int]] = []
        self._ages: tuple[int | None, ...] = ()
        self._relink()
        self._slots = 0  # sum of n over live generations
        self._retired: list[dict[int, int]] = []  # released by _release, oldest last
        self._stateful = False  # some value carries lifecycle data (set_state was called)

    def __len__(self) -> int:
        return sum(map(len, self._dicts))

    @property
    def unreleased(self) -> int:
        """Entries of retired generations not yet released (no longer consulted)."""
        return sum(map(len, self._retired))

    @property
    def generations_held(self) -> int:
        return len(self._ring)

    @property
    def clock(self) -> int:
        """The window's time (ms): the newest guarded record time it has seen, never back."""
        return self._now

    def state_of(self, h: int) -> int:
        """The lifecycle data held for message `h` (0: none, or not held)."""
        for d in self._dicts:
            v = d.get(h)
            if v is not None:
                return v >> _NS
        return 0

    def set_state(self, h: int, data: int) -> None:
        """Hold `data` (a non-negative int, the core's packed lifecycle data) for message `h`,
        if the window holds it; its emitted statuses are kept."""
        for d in self._dicts:
            v = d.get(h)
            if v is not None:
                d[h] = data << _NS | (v & _MASK_BITS) if data else _VALUES[v & _MASK_BITS]
                self._stateful = True
                return

    def hashes(self, keys: Sequence[bytes]) -> list[int]:
        """The window's 60-bit hash of each output record key ``b"<provider>:<message_key>"``:
        :func:`message_hashes` for a window without ``hash_key``, else keyed BLAKE2s."""
        base = self._blake
        if base is None:
            return message_hashes(keys)
        copy = base.copy  # the keyed state, set up once: copying it skips the key block
        from_bytes = int.from_bytes
        mask = _MASK60
        out = []
        for k in keys:
            h = copy()
            h.update(k)
            out.append(from_bytes(h.digest()) & mask)
        return out

    def guarded_now(self, stamps: Iterable[int], wall_ms: int, tolerance_ms: int) -> int:
        """The batch's window time: the newest of ``stamps`` (record times, ms) that is at most
        ``tolerance_ms`` ahead of ``wall_ms``. Stamps further ahead are counted in
        ``counters.clock_skew`` and ignored; with none left, the window's current time."""
        stamps = stamps if isinstance(stamps, list | tuple) else list(stamps)
        limit = wall_ms + tolerance_ms
        newest = max(stamps, default=self._now)
        if newest <= limit:  # the usual case: one max() in C
            return newest
        kept = [s for s in stamps if s <= limit]
        self.counters.clock_skew += len(stamps) - len(kept)
        return max(kept, default=self._now)

    def check_batch(
        self,
        hashes: Sequence[int],
        statuses: Sequence[int],
        providers: Sequence[int],
        now_ms: int,
    ) -> bytearray:
        """One verdict (EMIT, DUPLICATE, STALE) per event, events applied in order."""
        joint, out = self._apply(hashes, statuses, providers, now_ms, _CHECK)
        if out:
            c = self.counters
            emitted, duplicates, stale = c.emitted, c.duplicates, c.stale
            count = joint.count
            for p in range(_NP):
                code = p << 2
                emitted[p] += count(code | _EMIT_IN_PLACE) + count(code | _INSERTED)
                duplicates[p] += count(code | DUPLICATE)
                stale[p] += count(code | STALE)
        return out.translate(_VERDICT)

    def load_batch(
        self,
        hashes: Sequence[int],
        statuses: Sequence[int],
        providers: Sequence[int],
        now_ms: int,
    ) -> None:
        """Rebuild from already-emitted events: mark each emitted, count nothing.

        Statuses are marked even if the rules would call them stale (the output topic is the
        truth). Fed the emitted events with the same ``now_ms`` per batch, the window ends in
        the same state as the one that emitted them.
        """
        self._apply(hashes, statuses, providers, now_ms, _LOAD)

    def dump(self) -> bytes:
        """The window's state as bytes, for :meth:`restore` in this or another process.

        Needs a window made with ``hash_key`` (the key is part of the dump: keep dumps as
        private as the state they hold). Counters and retired generations are not included.
        O(messages), in bulk: about 0.15 s per million messages; 10 bytes per message plus the
        hint table (4 to 8 bytes per message of capacity); see benchmarks/window_bench.py. With
        lifecycle data, each message's data is written too (about 17 bytes), by Python loops
        over the messages: 1 M messages dumped in 0.5 CPU-s and restored in 1.8 (a loaded
        machine), a 28 MB dump.
        """
        if self.hash_key is None:
            raise ValueError("a window without hash_key cannot be dumped (per-process hashes)")
        ring = self._ring
        packed = len(self) * _SPARSE < len(self._hint)
        keys = array("q")
        values = array("H")
        gens = []
        for g in ring:
            gens.append(_GEN.pack(g.tag, g.n, g.first, g.newest, len(g.d), *g.counts))
            keys.extend(g.d)
            values.extend(
                [v & _MASK_BITS for v in g.d.values()] if self._stateful else g.d.values()
            )
        states = _dump_states([v for g in ring for v in g.d.values()]) if self._stateful else b""
        head = _HEAD.pack(
            _MAGIC,
            _FORMAT,
            self.max_messages,
            self.ttl_ms,
            self.generations,
            self._now,
            self._tag,
            len(ring),
            len(self._hint),
            len(self.hash_key),
            packed,
            len(states),
        )
        hints = zlib.compress(self._hint, 1) if packed else bytes(self._hint)
        return b"".join(
            [head, self.hash_key, *gens, keys.tobytes(), values.tobytes(), states, hints]
        )

    def frozen(self) -> Self:
        """A copy of this window as it is now, to :meth:`dump` elsewhere (a worker thread)
        while this one goes on: its dicts and hint table copied in C, about 0.025 CPU-s per
        million messages against a dump's 0.15 (0.5 with lifecycle data)."""
        w = copy.copy(self)
        ring = []
        for g in self._ring:
            c = copy.copy(g)  # its scalars; the containers below are the ones that change
            c.d, c.counts = g.d.copy(), g.counts[:]
            ring.append(c)
        w._ring, w._hint, w._retired = ring, bytearray(self._hint), []
        w._relink()
        return w

    @classmethod
    def restore(cls, data: bytes | bytearray | memoryview) -> Self:
        """The window :meth:`dump` wrote; ``ValueError`` (never a half-built window) when the
        data is not a well-formed dump of this format."""
        view = memoryview(data).cast("B")
        try:
            return cls._restore(view)
        except (struct.error, IndexError, TypeError, OverflowError) as exc:
            raise ValueError(f"not a window dump: {exc}") from None

    # -- internals -------------------------------------------------------------------------

    @classmethod
    def _restore(cls, view: memoryview) -> Self:
        def bad(what: str) -> ValueError:
            return ValueError(f"not a window dump: {what}")

        magic, version = (
            _MAGIC_HEAD.unpack_from(view) if len(view) >= _MAGIC_HEAD.size else (b"", 0)
        )
        if magic != _MAGIC:
            raise bad("wrong magic")
        head = _HEADS.get(version)
        if head is None:
            raise bad(f"format version {version}, this build reads {sorted(_HEADS)}")
        (_, _, max_messages, ttl_ms, generations, now, tag, ngen, hint_size, key_len, packed) = (
            head.unpack_from(view)[:11]
        )
        states_size = head.unpack_from(view)[11] if version == _FORMAT else 0
        pos = head.size
        hash_key = bytes(view[pos : pos + key_len])
        pos += key_len
        # The hint table's size tells whether the window was made to keep lifecycle data.
        lifecycle = hint_size != _hint_size(max_messages)
        w = cls(max_messages, ttl_ms, generations, hash_key, lifecycle)
        if hint_size != len(w._hint):
            raise bad(f"hint table of {hint_size} bytes, expected {len(w._hint)}")
        if not 1 <= ngen < _MAX_LIVE or not 1 <= tag <= 255:
            raise bad("generation count or tag out of range")
        heads = []
        for _ in range(ngen):
            gtag, n, first, newest, entries, *counts = _GEN.unpack_from(view, pos)
            pos += _GEN.size
            if not 1 <= gtag <= 255 or entries > n or sum(counts) != entries:
                raise bad("generation books do not add up")
            heads.append((gtag, n, first, newest, entries, counts))
        tags = [h[0] for h in heads]
        total = sum(h[4] for h in heads)
        slots = sum(h[1] for h in heads)
        if tags[0] != tag or len(set(tags)) != ngen or slots > max_messages or heads[0][1] > w._cap:
            raise bad("generation tags or slots inconsistent")
        stored = len(view) - pos - 10 * total - states_size  # the hint table's bytes as stored
        if stored < 0 or (not packed and stored != hint_size):
            raise bad(f"{len(view)} bytes, expected {pos + 10 * total + states_size + hint_size}")
        keys = array("q")
        keys.frombytes(view[pos : pos + 8 * total])
        pos += 8 * total
        values = array("H")
        values.frombytes(view[pos : pos + 2 * total])
        pos += 2 * total
        if total and (
            min(keys) < 0 or max(keys) > _MASK60 or min(values) < 1 or max(values) >= len(_VALUES)
        ):
            raise bad("key or value out of range")
        ring = []
        start = 0
        value_of = _VALUES.__getitem__  # the interned value objects, not one int per message
        for gtag, n, first, newest, entries, counts in heads:
            g = _Gen(gtag, first)
            g.newest, g.n, g.counts = newest, n, counts
            end = start + entries
            g.d = dict(zip(keys[start:end], map(value_of, values[start:end]), strict=True))
            if len(g.d) != entries:
                raise bad("repeated key in a generation")
            ring.append(g)
            start = end
        if states_size:
            _restore_states(view[pos : pos + states_size], keys, ring, total)
            pos += states_size
            w._stateful = True
        if packed:
            inflate = zlib.decompressobj()
            try:
                hints = inflate.decompress(view[pos:], hint_size)
            except zlib.error:
                hints = b""
            if len(hints) != hint_size or not inflate.eof or inflate.unused_data:
                raise bad("compressed hint table does not inflate to its size")
            w._hint[:] = hints
        else:
            w._hint[:] = view[pos:]
        w._now, w._tag, w._ring, w._slots = now, tag, ring, slots
        w._relink()
        return w

    def _room(self) -> int:
        """Inserts allowed before a rotation or an eviction must happen."""
        return min(self._cap - self._ring[0].n, self.max_messages - self._slots)

    def _relink(self) -> None:
        """Refresh the views the hot loop uses after the ring changed."""
        ring = self._ring
        self._dicts = [g.d for g in ring]
        self._counts = [g.counts for g in ring]
        # Age (index in the ring) of the generation a bucket tag designates; None for tags of
        # no live generation. Live tags are distinct: tags cycle through 1..255, and fewer than
        # _MAX_LIVE generations are live.
        ages: list[int | None] = [None] * 256
        for age, gen in enumerate(ring):
            ages[gen.tag] = age
        self._ages = tuple(ages)

    def _advance(self, now_ms: int) -> None:
        """Move time forward: rotate the current generation when its span is over, expire."""
        if now_ms > self._now:
            self._now = now_ms
        now = self._now
        cur = self._ring[0]
        if cur.n == 0:
            cur.first = cur.newest = now  # an empty generation starts with its first insert
        elif now - cur.first >= self._span:
            self._rotate()
        ring = self._ring
        ttl = self.ttl_ms
        while len(ring) > 1 and now - ring[-1].newest >= ttl:
            self._retire(self.counters.expired)

    def _rotate(self) -> None:
        if len(self._ring) >= _MAX_LIVE:  # unreachable (see _MAX_LIVE); keeps tags distinct
            self._retire(self.counters.evicted_by_count)
        self._tag = self._tag % 255 + 1  # 1..255
        self._ring.insert(0, _Gen(self._tag, self._now))
        self._relink()

    def _retire(self, counter: list[int]) -> None:
        gen = self._ring.pop()
        for p, k in enumerate(gen.counts):
            counter[p] += k
        self._slots -= gen.n
        if gen.d:
            self._retired.insert(0, gen.d)
        self._relink()

    def _make_room(self) -> None:
        """No insert left: rotate the full current generation and/or evict the oldest."""
        if self._ring[0].n >= self._cap:
            self._rotate()
        if self._slots >= self.max_messages:
            self._retire(self.counters.evicted_by_count)

    def _release(self, budget: int) -> None:
        """Free retired generations a bounded number of entries at a time."""
        retired = self._retired
        while budget > 0 and retired:
            d = retired[-1]
            k = min(budget, len(d))
            _consume(starmap(d.popitem, repeat((), k)))  # k popitem() calls, looped in C
            budget -= k
            if not d:
                retired.pop()

    def _apply(
        self,
        hashes: Sequence[int],
        statuses: Sequence[int],
        providers: Sequence[int],
        now_ms: int,
        table: tuple[int, ...],
    ) -> tuple[bytes, bytearray]:
        """Apply a batch; returns (``provider << 2 | code`` per event, code per event)."""
        n = len(hashes)
        if len(statuses) != n:
            raise ValueError(f"statuses has {len(statuses)} items, hashes {n}")
        if len(providers) != n:
            raise ValueError(f"providers has {len(providers)} items, hashes {n}")
        sb = _codes(statuses, _STATUS_CODES, "statuses must be status codes")
        pb = _codes(providers, _PROVIDER_CODES, "providers must be provider codes")
        self._advance(now_ms)
        out = bytearray(n)
        # Each event inserts at most once, so a segment of `room` events cannot overrun the
        # bounds: the hot loop needs no per-insert bookkeeping. Usually one segment per batch.
        # With no room left, events go one by one until one needs an insert: only that insert
        # rotates or evicts (duplicates and stale reports never do).
        pos = 0
        joint = b""
        while pos < n:
            room = self._room()
            if room <= 0:
                self._step(hashes[pos], sb[pos], pb[pos], pos, out, table)
                pos += 1
                continue
            end = n if n - pos <= room else pos + room
            gen = self._ring[0]
            before = len(gen.d)
            try:
                if pos == 0 and end == n:
                    self._segment(hashes, sb, pb, 0, out, table)
                else:
                    self._segment(hashes[pos:end], sb[pos:end], pb[pos:end], pos, out, table)
            finally:
                # The current generation only grows during a segment: growth = inserts. Its
                # per-provider counts come from the codes, in C. (In a finally: the books stay
                # right even if a bad hash raised mid-batch.)
                used = len(gen.d) - before
                if used:
                    gen.n += used
                    gen.newest = self._now
                    self._slots += used
                    if pos == 0 and end == n:  # the usual case: one segment, one joint
                        seg = joint = _joint(pb, out)
                    else:
                        seg = _joint(pb[pos:end], out[pos:end])
                    counts = gen.counts
                    for p in range(_NP):
                        counts[p] += seg.count(p << 2 | _INSERTED)
            pos = end
        self._release(2 * n + 1024)
        return joint or _joint(pb, out), out

    def _step(self, h: int, s: int, p: int, i: int, out: bytearray, table: tuple[int, ...]) -> None:
        """One event when no insert is left (the slow path of _segment, same rules)."""
        b = h & self._hint_mask
        dicts = self._dicts
        a = self._ages[self._hint[b]]
        if a is not None:
            while a < len(dicts):
                v = dicts[a].get(h)
                if v is not None:
                    k = (v & _MASK_BITS) << 4 | s
                    r = table[k]
                    if r:
                        out[i] = r
                        return
                    value = _NEXT[k] if v <= _MASK_BITS else v >> _NS << _NS | _NEXT[k]
                    if a == 0:  # in the current generation: updated in place, takes no room
                        dicts[0][h] = value
                        return
                    # A move: leave the old generation first, so the eviction below cannot
                    # take this message (exactly what _segment does).
                    del dicts[a][h]
                    self._counts[a][p] -= 1
                    break
                a += 1
            else:
                value = _NEW[s]
        else:
            value = _NEW[s]
        self._make_room()
        gen = self._ring[0]
        gen.d[h] = value
        gen.counts[p] += 1
        gen.n += 1
        gen.newest = self._now
        self._slots += 1
        self._hint[b] = gen.tag
        out[i] = _INSERTED

    def _segment(
        self,
        hashes: Sequence[int],
        statuses: bytes,
        providers: bytes,
        start: int,
        out: bytearray,
        table: tuple[int, ...],
    ) -> None:
        """The hot loop: locals only, table lookups, dict ops; no calls per event.

        Writes a code per event into out: 0 updated in place, 1 duplicate, 2 stale, 3 inserted
        (counters and per-generation provider counts are derived from the codes in C after).
        """
        hint = self._hint
        hmask = self._hint_mask
        ages = self._ages
        nxt = _NEXT
        new = _NEW
        dicts = self._dicts
        counts = self._counts
        nlive = len(dicts)
        cur = dicts[0]
        cur_get = cur.get
        tag = self._tag
        for i, (h, s) in enumerate(zip(hashes, statuses, strict=True), start):
            # Most reports are for a message of the current generation: try it first.
            v = cur_get(h)
            if v is not None:
                k = (v & 511) << 4 | s
                r = table[k]
                if r:
                    out[i] = r
                else:
                    # Above the mask, a value may hold the message's lifecycle data (kept).
                    cur[h] = nxt[k] if v < 512 else v >> 9 << 9 | nxt[k]
                continue
            b = h & hmask
            a = ages[hint[b]]  # the newest generation that may hold h
            if a is not None:
                if not a:
                    a = 1
                while a < nlive:
                    src = dicts[a]
                    v = src.get(h)
                    if v is not None:
                        k = (v & 511) << 4 | s
                        r = table[k]
                        if r:
                            out[i] = r
                        else:
                            # Emitted from an older generation: move it to the current one.
                            del src[h]
                            counts[a][providers[i - start]] -= 1
                            cur[h] = nxt[k] if v < 512 else v >> 9 << 9 | nxt[k]
                            hint[b] = tag
                            out[i] = 3
                        break
                    a += 1
                else:
                    a = None
                if a is not None:
                    continue
            # Held nowhere: a new message (most are known new after one hint byte).
            cur[h] = new[s]
            hint[b] = tag
            out[i] = 3  # _INSERTED (literals: no global lookups in the loop)


def _codes(values: Sequence[int], allowed: bytes, problem: str) -> bytes:
    """`values` as bytes, each one of `allowed`: bytes() validates and converts in C, and the
    hot loop then iterates bytes (small ints)."""
    try:
        codes = bytes(values)
    except (ValueError, TypeError):
        codes = b"\xff"
    if codes.translate(None, allowed):
        raise ValueError(f"{problem} 0..{len(allowed) - 1}")
    return codes


def _joint(providers: bytes, codes: bytes | bytearray) -> bytes:
    """Per event ``provider << 2 | code``, computed in C: as big integers the two byte strings
    add without carries (each byte sum stays below 256)."""
    n = len(codes)
    return (int.from_bytes(providers.translate(_TIMES4)) + int.from_bytes(codes)).to_bytes(n)


def _dump_states(values: list[int]) -> bytes:
    """The lifecycle data of `values` (entries in dump order): count, positions, lengths, bytes."""
    at = array("I")
    lengths = array("B")
    blobs: list[bytes] = []
    for i, v in enumerate(values):
        data = v >> _NS
        if data:
            n = (data.bit_length() + 7) // 8
            if n > 255:
                raise ValueError(f"lifecycle data of {n} bytes (at most 255)")
            at.append(i)
            lengths.append(n)
            blobs.append(data.to_bytes(n, "little"))
    return struct.pack("<Q", len(at)) + at.tobytes() + lengths.tobytes() + b"".join(blobs)


def _restore_states(view: memoryview, keys: array[int], ring: list[_Gen], total: int) -> None:
    """Put back what :func:`_dump_states` wrote into the restored generations' values."""
    (count,) = struct.unpack_from("<Q", view)
    pos = 8
    at = array("I")
    at.frombytes(view[pos : pos + 4 * count])
    pos += 4 * count
    lengths = array("B")
    lengths.frombytes(view[pos : pos + count])
    pos += count
    if len(at) != count or len(lengths) != count or pos + sum(lengths) != len(view):
        raise ValueError("not a window dump: lifecycle data does not add up")
    if count and (max(at) >= total or min(lengths) < 1):
        raise ValueError("not a window dump: lifecycle data out of range")
    dicts = [g.d for g in ring]
    from_bytes = int.from_bytes
    for i, n in zip(at, lengths, strict=True):
        data = from_bytes(view[pos : pos + n], "little")
        pos += n
        h = keys[i]
        for d in dicts:
            v = d.get(h)
            if v is not None:
                d[h] = data << _NS | v
                break

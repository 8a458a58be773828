"""Final-timeouts: messages with no final status a timeout after their first report. Pure.

Per provider, the messages still waiting for a final status, in first-report order (an
`OrderedDict`: O(1) at both ends), each with its deadline (first report's record time + the
provider's timeout) and what its timed-out state record needs (key, identity). A final status or
a time-out takes a message out. The queue's head is due once the window's clock (stream time)
reaches its deadline: a replay of old records times nothing out early. Record times of one
partition are nearly in order, so a head later than one behind it delays that one by no more
than the disorder of the stamps.

Memory: a message waiting for its final costs about 300 bytes here (its deadline, key and
identity in one bytes object, and its queue entry) until its final or its time-out; a message
that gets its final costs nothing. At most `capacity` messages wait (the window's: a message
the window forgot cannot be timed out anyway); beyond it the oldest waiting one is dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from struct import Struct
from typing import Final, NamedTuple

import msgspec

from schemas import PROVIDERS, RANK, STATUSES

_FINAL_KINDS: Final = frozenset(i + 1 for i, s in enumerate(STATUSES) if RANK[s] == 4)
#: A waiting message as held: deadline (ms) and key length, then its key and identity.
_HEAD: Final = Struct("<qI")


class Waiting(NamedTuple):
    """A message waiting for a final status."""

    deadline: int  # ms, stream time
    key: bytes  # the output record key
    identity: bytes  # the identity of its newest event, as JSON (see _lifecycle.Facts)


def has_final(entries: list[tuple[int, int]]) -> bool:
    return any(kind in _FINAL_KINDS for kind, _ in entries)


def _held(deadline: int, key: bytes, identity: bytes) -> bytes:
    return _HEAD.pack(deadline, len(key)) + key + identity


def _waiting(held: bytes) -> Waiting:
    deadline, size = _HEAD.unpack_from(held)
    start = _HEAD.size
    return Waiting(deadline, held[start : start + size], held[start + size :])


class Timeouts:
    """The waiting messages of one window, by provider (see the module docstring)."""

    def __init__(
        self,
        default_ms: int,
        by_provider: Mapping[str, int] | None = None,
        capacity: int | None = None,
    ) -> None:
        """``capacity``: the most messages that wait (None: no bound)."""
        by_provider = by_provider or {}
        self.timeout_ms: Final[dict[str, int]] = {
            p: by_provider.get(p, default_ms) for p in PROVIDERS
        }
        self.queues: Final[dict[str, OrderedDict[int, bytes]]] = {
            p: OrderedDict() for p in PROVIDERS
        }
        self.capacity = capacity
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def wait(self, provider: str, h: int, first_s: int, key: bytes, identity: bytes) -> str | None:
        """Message `h` (first reported at `first_s`) has no final yet: it waits (its place in
        the queue kept, its identity the newest). Returns the provider of a message dropped to
        stay within the capacity, if one was."""
        queue = self.queues[provider]
        held = queue.get(h)
        if held is not None:
            queue[h] = held[: _HEAD.size + len(key)] + identity
            return None
        queue[h] = _held(first_s * 1000 + self.timeout_ms[provider], key, identity)
        self._count += 1
        if self.capacity is not None and self._count > self.capacity:
            return self._drop_oldest()
        return None

    def _drop_oldest(self) -> str:
        """Drop the message first reported earliest (the head of one queue)."""
        timeouts, unpack = self.timeout_ms, _HEAD.unpack_from
        heads = [
            (unpack(next(iter(q.values())))[0] - timeouts[p], p)
            for p, q in self.queues.items()
            if q
        ]
        provider = min(heads)[1]
        self.queues[provider].popitem(last=False)
        self._count -= 1
        return provider

    def done(self, provider: str, h: int) -> None:
        """Message `h` got its final (or timed out): it waits no more."""
        if self.queues[provider].pop(h, None) is not None:
            self._count -= 1

    def earliest(self) -> int | None:
        """The earliest deadline of the waiting messages (ms), None when none waits (the
        queues are in first-report order, not strictly in deadline order: all are looked at)."""
        unpack = _HEAD.unpack_from
        return min((unpack(w)[0] for q in self.queues.values() for w in q.values()), default=None)

    def take(self, h: int, stamp_ms: int) -> str | None:
        """Take message `h` out when it waits and a time-out record stamped `stamp_ms` can be
        its own (stamped no earlier than its first report: not one of an earlier life of its
        key, before the window forgot it); its provider, else None."""
        for provider, queue in self.queues.items():
            held = queue.get(h)
            if held is not None:
                if _HEAD.unpack_from(held)[0] - self.timeout_ms[provider] > stamp_ms:
                    return None
                del queue[h]
                self._count -= 1
                return provider
        return None

    def due(self, clock_ms: int) -> Iterator[tuple[str, int, Waiting]]:
        """Take out and yield the messages whose deadline is at most `clock_ms`."""
        unpack = _HEAD.unpack_from
        for provider, queue in self.queues.items():
            while queue:
                h = next(iter(queue))
                if unpack(queue[h])[0] > clock_ms:
                    break
                self._count -= 1
                yield provider, h, _waiting(queue.popitem(last=False)[1])

    def dump(self) -> bytes:
        """The waiting messages, for a snapshot (:meth:`load`)."""
        return _dump([(p, q) for p, q in self.queues.items() if q])

    def dump_later(self) -> Callable[[], bytes]:
        """:meth:`dump` of the messages waiting now, to call elsewhere (a worker thread) while
        these queues go on changing: they are copied here (in C), encoded there."""
        queues = [(p, q.copy()) for p, q in self.queues.items() if q]
        return lambda: _dump(queues)

    def load(self, data: bytes) -> None:
        """Put back what :meth:`dump` wrote (ValueError when it is not that)."""
        try:
            rows = _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a dump of waiting messages: {exc}") from None
        for provider, items in rows:
            if provider not in self.queues:
                raise ValueError(f"not a dump of waiting messages: provider {provider!r}")
            queue = self.queues[provider]
            for h, deadline, key, identity in items:
                if h not in queue:
                    self._count += 1
                queue[h] = _held(deadline, key, identity)


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(list[tuple[str, list[tuple[int, int, bytes, bytes]]]])


def _dump(queues: list[tuple[str, OrderedDict[int, bytes]]]) -> bytes:
    return _ENCODER.encode([[p, [[h, *_waiting(w)] for h, w in q.items()]] for p, q in queues])

"""Final-timeouts: messages with no final status a timeout after their first report. Pure.

Per provider, the messages still waiting for a final status, in first-report order (an
`OrderedDict`: O(1) at both ends), each with its deadline (first report's record time + the
provider's timeout) and what its timed-out state record needs (key, identity). A final status or
a time-out takes a message out. The queue's head is due once the window's clock (stream time)
reaches its deadline: a replay of old records times nothing out early. Record times of one
partition are nearly in order, so a head later than one behind it delays that one by no more
than the disorder of the stamps.

Memory: a message waiting for its final costs about half a kilobyte here (its key and identity)
until its final or its time-out; a message that gets its final costs nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Final, NamedTuple

import msgspec

from schemas import PROVIDERS, RANK, STATUSES

_FINAL_KINDS: Final = frozenset(i + 1 for i, s in enumerate(STATUSES) if RANK[s] == 4)


class Waiting(NamedTuple):
    """A message waiting for a final status."""

    deadline: int  # ms, stream time
    key: bytes  # the output record key
    identity: bytes  # the identity of its newest event, as JSON (see _lifecycle.Facts)


def has_final(entries: list[tuple[int, int]]) -> bool:
    return any(kind in _FINAL_KINDS for kind, _ in entries)


class Timeouts:
    """The waiting messages of one window, by provider (see the module docstring)."""

    def __init__(self, default_ms: int, by_provider: Mapping[str, int] | None = None) -> None:
        by_provider = by_provider or {}
        self.timeout_ms: Final[dict[str, int]] = {
            p: by_provider.get(p, default_ms) for p in PROVIDERS
        }
        self.queues: Final[dict[str, OrderedDict[int, Waiting]]] = {
            p: OrderedDict() for p in PROVIDERS
        }

    def __len__(self) -> int:
        return sum(map(len, self.queues.values()))

    def wait(self, provider: str, h: int, first_s: int, key: bytes, identity: bytes) -> None:
        """Message `h` (first reported at `first_s`) has no final yet: it waits (its place in
        the queue kept, its identity the newest)."""
        queue = self.queues[provider]
        entry = queue.get(h)
        if entry is None:
            queue[h] = Waiting(first_s * 1000 + self.timeout_ms[provider], key, identity)
        else:
            queue[h] = entry._replace(identity=identity)

    def done(self, provider: str, h: int) -> None:
        """Message `h` got its final (or timed out): it waits no more."""
        self.queues[provider].pop(h, None)

    def earliest(self) -> int | None:
        """The earliest deadline of the waiting messages (ms), None when none waits (the
        queues are in first-report order, not strictly in deadline order: all are looked at)."""
        return min((w.deadline for q in self.queues.values() for w in q.values()), default=None)

    def take(self, h: int, stamp_ms: int) -> str | None:
        """Take message `h` out when it waits and a time-out record stamped `stamp_ms` can be
        its own (stamped no earlier than its first report: not one of an earlier life of its
        key, before the window forgot it); its provider, else None."""
        for provider, queue in self.queues.items():
            waiting = queue.get(h)
            if waiting is not None:
                if waiting.deadline - self.timeout_ms[provider] > stamp_ms:
                    return None
                del queue[h]
                return provider
        return None

    def due(self, clock_ms: int) -> Iterator[tuple[str, int, Waiting]]:
        """Take out and yield the messages whose deadline is at most `clock_ms`."""
        for provider, queue in self.queues.items():
            while queue:
                h = next(iter(queue))
                if queue[h].deadline > clock_ms:
                    break
                yield provider, h, queue.popitem(last=False)[1]

    def dump(self) -> bytes:
        """The waiting messages, for a snapshot (:meth:`load`)."""
        return _ENCODER.encode(
            [[p, [[h, *w] for h, w in q.items()]] for p, q in self.queues.items() if q]
        )

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
                queue[h] = Waiting(deadline, key, identity)


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(list[tuple[str, list[tuple[int, int, bytes, bytes]]]])

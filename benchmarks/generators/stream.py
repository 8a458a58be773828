"""The shared state of the stream simulation: clock, random source, retries, record placement."""

from __future__ import annotations

import heapq
import random
import zlib
from typing import Any

from benchmarks.generators.truth import (
    DEFAULT_SPAN_S,
    HEADERED,
    PARTITIONS,
    TOPIC,
    Msg,
    Proto,
    Truth,
)
from pipeline.core import InputRecord


class _Queue:
    """Reports due on one channel at some time: (due_ms, seq, report)."""

    __slots__ = ("heap",)

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, Any]] = []

    def take(self, now: int, limit: int) -> list[Any]:
        heap = self.heap
        out: list[Any] = []
        while heap and heap[0][0] <= now and len(out) < limit:
            out.append(heapq.heappop(heap)[2])
        return out

    def due(self, now: int) -> bool:
        return bool(self.heap) and self.heap[0][0] <= now


class Stream:
    """Clock, random source, scheduled retries and record placement shared by the provider
    generators. All state is created here, in one order, so a seed gives the same bytes."""

    def __init__(
        self,
        seed: int,
        receipts: int,
        start_ms: int,
        span_s: float = DEFAULT_SPAN_S,
        truth: Truth | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.left = receipts
        self.now = start_ms
        self.ms_per_receipt = max(span_s * 1000.0 / max(receipts, 1), 0.01)
        self.truth = truth if truth is not None else Truth()
        self.seq = 0
        self.offsets = [0] * PARTITIONS
        self.scheduled: list[tuple[int, int, Proto]] = []  # retries and late bodies
        self.queues: dict[str, _Queue] = {}
        self.last_page: dict[str, list[Any]] = {}
        self.counter = 1000
        r = self.rng
        self.ultiroam_gateways = [
            (
                f"{r.randrange(16**4):04X}-{r.randrange(16**4):04X}-{r.randrange(16**4):04X}-{r.randrange(16**4):04X}",
                tz,
            )
            for tz in ("Asia/Shanghai", "Asia/Shanghai", "Europe/Berlin", None)
        ]
        self.ultiroam_refs = [[r.randrange(256) for _ in range(32)] for _ in self.ultiroam_gateways]
        self.uspeedo_accounts = [str(r.randint(10000, 99999)) for _ in range(3)]
        # Recipients of the current uSpeedo session not reported yet.
        self.uspeedo_open: list[tuple[Msg, Any]] = []
        self.tencent_apps = [str(1400000000 + r.randrange(10**6)) for _ in range(2)]
        self.smspartner_polls: list[tuple[int, int, int, Any]] = []
        self.sid = 16_741_236_146 + r.randrange(10**6)
        self.smspartner_id = 4_500_000 + r.randrange(10**5)

    # -- plumbing -------------------------------------------------------------------------------

    def _q(self, name: str) -> _Queue:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = _Queue()
        return q

    def _later(self, name: str, delay_ms: int, report: Any) -> None:
        self.seq += 1
        heapq.heappush(self._q(name).heap, (self.now + delay_ms, self.seq, report))

    def _schedule(self, delay_ms: int, proto: Proto) -> None:
        self.seq += 1
        heapq.heappush(self.scheduled, (self.now + delay_ms, self.seq, proto))

    def _uid(self) -> int:
        self.counter += 1
        return self.counter

    def _headers(self, proto: Proto) -> list[tuple[str, bytes]]:
        if self.rng.random() >= HEADERED:
            return []
        headers = [("provider", proto.provider.encode()), ("endpoint", proto.endpoint.encode())]
        if proto.account is not None and self.rng.random() < 0.6:
            headers.append(("account", proto.account.encode()))
        if proto.tz is not None:
            headers.append(("tz", proto.tz.encode()))
        headers.append(("content-type", proto.ctype.encode()))
        return headers

    def _record(self, proto: Proto) -> InputRecord:
        truth = self.truth
        if proto.headers is None:
            proto.headers = self._headers(proto)
        if proto.headers:
            truth.headered += 1
        partition = zlib.crc32(f"{proto.provider}:{proto.account}".encode()) % PARTITIONS
        offset = self.offsets[partition]
        self.offsets[partition] = offset + 1
        truth.records += 1
        truth.bytes += len(proto.body)
        if proto.kind == "receipts":
            n = len(proto.seen)
            truth.receipts += n
            truth.by_provider[proto.provider] += n
            truth.formats[f"{proto.provider}.{proto.fmt}"] += 1
            see = truth.see
            dups, stale = truth.duplicates, truth.stale
            for msg, status in proto.seen:
                see(msg, status)
            truth.duplicates_by_provider[proto.provider] += truth.duplicates - dups
            truth.stale_by_provider[proto.provider] += truth.stale - stale
            self.left -= n
        elif proto.kind == "non_receipt":
            truth.non_receipts[proto.fmt] += 1
        else:
            truth.malformed[proto.kind] += 1
        return InputRecord(TOPIC, partition, offset, self.now, list(proto.headers), proto.body)

    def _advance(self, receipts: int) -> None:
        mean = self.ms_per_receipt * max(receipts, 3)
        self.now += int(self.rng.expovariate(1.0) * mean) + 1

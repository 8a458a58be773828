"""A realistic, deterministic corpus of raw provider bodies for the benchmarks.

`generate(seed, receipts)` yields `InputRecord`s as the ingress would land them on the input topic:
all five providers and every format of shared/receipt-event.md, push and poll, realistic batch
sizes, ~10% duplicate reports (whole-body provider retries, poll pages overlapping earlier pages,
the same report by push and by poll, repeated polls of a bulk), some out-of-order statuses (a late
`SENT_OK`/`Waiting`/submit result after the final), ~1% malformed bodies (truncated JSON/XML,
invalid UTF-8, wrong types, provider error responses, an XML entity bomb now and then), a few
non-receipt bodies (inbound SMS, USSD, replies, statistics), phone numbers of several countries in
each provider's own spellings, time strings and epochs around a configurable start time, and record
timestamps advancing as a Poisson-like arrival process. ~80% of records carry `provider`/`endpoint`
headers (often `account`, `content-type`, and `tz` for gateways in another zone); the rest must be
recognised by shape.

Everything derives from one `random.Random(seed)`: the same seed gives the same bytes, on any
machine and hash seed (no set or hash() ordering is used).

The generator also keeps the ground truth (`Truth`): every receipt it writes belongs to a logical
message it tracks, so it knows how many reports the dedupe window must emit, drop as duplicates
and drop as stale (window rules of receipt-event.md, no eviction within the corpus span).

CLI: `python benchmarks/corpus.py --seed 1 --receipts 100000 --out FILE.jsonl` writes kcat `-J`
JSON lines (`payload_b64` instead of `payload` for the rare body that is not UTF-8).
"""

from __future__ import annotations

import argparse
import base64
import heapq
import json
import random
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import IO, Any, Final
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

import orjson

from pipeline.core._batch import InputRecord
from schemas import RANK, STATUSES

TOPIC: Final = "sms.receipts.raw"
PARTITIONS: Final = 6
#: Default start: the night Europe/Paris and Berlin switch to summer time (01:00Z on 03-31).
DEFAULT_START: Final = "2024-03-30T23:40:00Z"
#: Default span of record timestamps, whatever the corpus size (so ratios do not depend on size).
DEFAULT_SPAN_S: Final = 7200.0

HEADERED: Final = 0.80
MALFORMED: Final = 0.010
NON_RECEIPT: Final = 0.012

BIT: Final = {s: 1 << i for i, s in enumerate(STATUSES)}

#: Every format the corpus produces (`Truth.formats` keys), provider.format.
FORMATS: Final = (
    "uspeedo.poll",
    "uspeedo.push",
    "uspeedo.push_array",
    "ultiroam.query_sms_result",
    "ultiroam.sms_result",
    "ultiroam.sms_deliver_status",
    "yunpian.push",
    "yunpian.push_double",
    "smspartner.json",
    "smspartner.xml",
    "smspartner.single",
    "tencent.PullSmsSendStatus",
    "tencent.callback",
    "tencent.SendSms",
)
NON_RECEIPT_KINDS: Final = (
    "uspeedo.inbound",
    "ultiroam.sms",
    "ultiroam.ussd",
    "tencent.reply",
    "tencent.reply_callback",
    "tencent.statistics",
)
MALFORMED_KINDS: Final = (
    "truncated",
    "invalid_utf8",
    "wrong_type",
    "provider_error",
    "entity_bomb",
    "garbage",
)


# -- ground truth -------------------------------------------------------------------------------


class Msg:
    """One logical message to one recipient; `mask`/`top` replay the window's rules."""

    __slots__ = ("mask", "top")

    def __init__(self) -> None:
        self.mask = 0
        self.top = 0


class Truth:
    """What the generator put in the corpus, and what a correct core must make of it."""

    def __init__(self) -> None:
        self.records = 0
        self.receipts = 0  # reports inside receipt bodies (what the decoders must decode)
        self.emitted = 0  # events the window must emit
        self.duplicates = 0
        self.stale = 0
        self.bytes = 0
        self.headered = 0
        self.retried_bodies = 0
        self.delayed_bodies = 0
        self.formats: Counter[str] = Counter()  # receipt records by provider.format
        self.malformed: Counter[str] = Counter()  # malformed records by kind
        self.non_receipts: Counter[str] = Counter()  # non-receipt records by kind
        self.by_provider: Counter[str] = Counter()  # receipts by provider
        self.duplicates_by_provider: Counter[str] = Counter()
        self.stale_by_provider: Counter[str] = Counter()

    def see(self, msg: Msg, status: str) -> None:
        bit = BIT[status]
        if msg.mask & bit:
            self.duplicates += 1
        elif RANK[status] < msg.top:
            self.stale += 1
        else:
            msg.mask |= bit
            if RANK[status] > msg.top:
                msg.top = RANK[status]
            self.emitted += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "receipts": self.receipts,
            "emitted": self.emitted,
            "duplicates": self.duplicates,
            "stale": self.stale,
            "bytes": self.bytes,
            "headered": self.headered,
            "retried_bodies": self.retried_bodies,
            "delayed_bodies": self.delayed_bodies,
            "malformed": sum(self.malformed.values()),
            "non_receipts": sum(self.non_receipts.values()),
            "formats": dict(sorted(self.formats.items())),
            "malformed_kinds": dict(sorted(self.malformed.items())),
            "non_receipt_kinds": dict(sorted(self.non_receipts.items())),
            "by_provider": dict(sorted(self.by_provider.items())),
            "duplicates_by_provider": dict(sorted(self.duplicates_by_provider.items())),
            "stale_by_provider": dict(sorted(self.stale_by_provider.items())),
        }


Seen = list[tuple[Msg, str]]  # (message, canonical status) per report, in body order


class Proto:
    """A record before it has a place in the stream: body, routing, and the reports it carries."""

    __slots__ = (
        "account",
        "body",
        "ctype",
        "endpoint",
        "fmt",
        "headers",
        "kind",
        "provider",
        "seen",
        "tz",
    )

    def __init__(
        self,
        provider: str,
        fmt: str,
        endpoint: str,
        body: bytes,
        seen: Seen,
        *,
        kind: str = "receipts",
        account: str | None = None,
        tz: str | None = None,
        ctype: str = "application/json",
    ) -> None:
        self.provider = provider
        self.fmt = fmt
        self.endpoint = endpoint
        self.body = body
        self.seen = seen
        self.kind = kind
        self.account = account
        self.tz = tz
        self.ctype = ctype
        self.headers: list[tuple[str, bytes]] | None = None  # fixed at first emission


# -- values: times and phone numbers -----------------------------------------------------------


@lru_cache(maxsize=4096)
def _offset_s(zone: str, quarter: int) -> int:
    """UTC offset of `zone` in the 15-minute slot `quarter` (transitions fall on slot edges)."""
    moment = datetime.fromtimestamp(quarter * 900, ZoneInfo(zone))
    offset = moment.utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@lru_cache(maxsize=8192)
def _day(days: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(days=days)).strftime("%Y-%m-%d")


def local_text(epoch_s: int, zone: str) -> str:
    """`YYYY-MM-DD HH:MM:SS` of epoch seconds as a clock in `zone` shows it."""
    t = epoch_s + _offset_s(zone, epoch_s // 900)
    days, rem = divmod(t, 86400)
    return f"{_day(days)} {rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}"


US_AREAS: Final = ("202", "212", "305", "310", "415", "512", "617", "646", "702", "917")
DE_PREFIX: Final = (
    "151",
    "152",
    "157",
    "160",
    "162",
    "170",
    "171",
    "172",
    "175",
    "176",
    "177",
    "179",
)
BR_AREAS: Final = ("11", "21", "31", "41", "51", "61", "71", "81", "85", "91")


def _phone(rng: random.Random, country: str) -> tuple[str, str]:
    """(country code, national significant number) of a plausible mobile number."""
    r = rng.randrange
    if country == "CN":
        return "86", f"1{'3456789'[r(7)]}{r(10**9):09d}"
    if country == "FR":
        return "33", f"{'67'[r(2)]}{r(10**8):08d}"
    if country == "US":
        return "1", f"{US_AREAS[r(10)]}{r(200, 1000)}{r(10000):04d}"
    if country == "DE":
        return "49", f"{DE_PREFIX[r(12)]}{r(10**8):08d}"
    if country == "IN":
        return "91", f"{'6789'[r(4)]}{r(10**9):09d}"
    if country == "BR":
        return "55", f"{BR_AREAS[r(10)]}9{r(10**8):08d}"
    if country == "GB":
        return "44", f"7{'45789'[r(5)]}{r(10**8):08d}"
    if country == "BE":
        return "32", f"4{'789'[r(3)]}{r(10**7):07d}"
    return "93", f"7{r(10)}{r(10**7):07d}"  # AF, the seed's own example


def _pick(rng: random.Random, weights: tuple[tuple[Any, float], ...]) -> Any:
    x = rng.random() * weights[-1][1]
    for value, cumulative in weights:
        if x < cumulative:
            return value
    return weights[-1][0]


def _cumulative(*pairs: tuple[Any, float]) -> tuple[tuple[Any, float], ...]:
    out, total = [], 0.0
    for value, weight in pairs:
        total += weight
        out.append((value, total))
    return tuple(out)


def _batch(rng: random.Random, cap: int) -> int:
    """A push/poll batch size up to `cap`: many small batches, a fat tail, full batches."""
    x = rng.random()
    if x < 0.30:
        n = 1
    elif x < 0.55:
        n = rng.randint(2, 10)
    elif x < 0.80:
        n = rng.randint(11, 50)
    elif x < 0.92:
        n = rng.randint(51, 99)
    else:
        n = 100
    return min(n, cap)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _dumps_ascii(obj: Any) -> bytes:
    """The other common JSON spelling: non-ASCII as \\u escapes, spaces after separators."""
    return json.dumps(obj, ensure_ascii=True).encode()


# -- the generator ------------------------------------------------------------------------------


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


class Generator:
    """The stream simulation; `records()` yields the corpus."""

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

    # -- the stream -----------------------------------------------------------------------------

    def records(self) -> Iterator[InputRecord]:
        rng = self.rng
        builders: tuple[tuple[Callable[[int], Proto | None], float], ...] = _cumulative(
            (self._uspeedo, 0.21),
            (self._ultiroam, 0.22),
            (self._yunpian, 0.17),
            (self._smspartner, 0.15),
            (self._tencent, 0.25),
        )
        while self.left > 0:
            scheduled = self.scheduled
            if scheduled and scheduled[0][0] <= self.now:
                proto = heapq.heappop(scheduled)[2]
                if len(proto.seen) > self.left:
                    continue
            else:
                x = rng.random()
                if x < MALFORMED:
                    proto = self._malformed()
                elif x < MALFORMED + NON_RECEIPT:
                    proto = self._non_receipt()
                else:
                    built = _pick(rng, builders)(self.left)
                    if built is None:
                        continue
                    proto = built
            record = self._record(proto)
            yield record
            self._advance(len(proto.seen))

    # -- yunpian: push only --------------------------------------------------------------------

    def _yunpian_msg(self) -> tuple[Msg, Any]:
        rng = self.rng
        self.sid += rng.randint(1, 40)
        sid: int | str = self.sid if rng.random() < 0.9 else str(self.sid)
        uid = (
            None if rng.random() < 0.3 else f"{'abcdefgh'[rng.randrange(8)]}{rng.randrange(10**6)}"
        )
        x = rng.random()
        if x < 0.78:
            cc, nsn = _phone(rng, "CN")
            mobile = nsn
        elif x < 0.82:
            cc, nsn = _phone(rng, "CN")
            mobile = f"+{cc}{nsn}"
        else:
            cc, nsn = _phone(rng, ("AF", "US", "GB", "IN", "DE")[rng.randrange(5)])
            mobile = f"+{cc}{nsn}"
        return Msg(), (sid, uid, mobile)

    _YUNPIAN_RESULTS: Final = _cumulative(
        (("SUCCESS", "DELIVRD", "接收成功", "DELIVERED"), 85.0),
        (("FAIL", "UNDELIV", "用户停机", "UNDELIVERED"), 4.0),
        (("FAIL", "EXPIRED", "短信过期", "EXPIRED"), 2.5),
        (("FAIL", "REJECTD", "用户拒收", "REJECTED"), 1.5),
        (("FAIL", "MK:0001", "空号", "UNDELIVERED"), 1.5),
        (("FAIL", "DB:0103", "运营商错误", "UNDELIVERED"), 1.0),
        (("FAIL", "MSBLACK", "黑名单", "UNDELIVERED"), 1.0),
        (("UNKNOWN", "", "状态未知", "UNKNOWN"), 3.5),
    )

    def _yunpian(self, cap: int) -> Proto:
        rng = self.rng
        n = _batch(rng, cap)
        q = self._q("yunpian")
        reports = q.take(self.now, n)
        now_s = self.now // 1000
        while len(reports) < n:
            msg, fields = self._yunpian_msg()
            result = _pick(rng, self._YUNPIAN_RESULTS)
            report = (msg, fields, result, now_s - rng.randint(1, 90))
            reports.append(report)
            if result[0] == "UNKNOWN" and rng.random() < 0.6:  # the real final follows
                final = _pick(rng, self._YUNPIAN_RESULTS[:2])
                self._later(
                    "yunpian", rng.randint(30_000, 900_000), (msg, fields, final, now_s + 60)
                )
        items = []
        seen: Seen = []
        for msg, (sid, uid, mobile), (status, code, detail, canon), when in reports:
            items.append(
                {
                    "error_detail": detail,
                    "sid": sid,
                    "uid": uid,
                    "user_receive_time": local_text(when, "Asia/Shanghai"),
                    "error_msg": code,
                    "mobile": mobile,
                    "report_status": status,
                }
            )
            seen.append((msg, canon))
        double = rng.random() < 0.15
        body = _yunpian_body(items, rng.random() < 0.3, double)
        proto = Proto(
            "yunpian",
            "push_double" if double else "push",
            "push",
            body,
            seen,
            ctype="application/x-www-form-urlencoded;charset=utf-8",
        )
        # "We will try to re-push every 5 minutes if it is failed. Up to 3 times will push."
        if rng.random() < 0.08:
            retries = 1 if rng.random() < 0.7 else rng.randint(2, 3)
            for k in range(1, retries + 1):
                self._schedule(300_000 * k + rng.randrange(5000), proto)
                self.truth.retried_bodies += 1
        return proto

    # -- uspeedo: GetUSMSSendReceipt poll, MsgType 2 push, bare array --------------------------

    _USPEEDO_RESULTS: Final = _cumulative(
        (("Success", "DELIVRD", "Success", "DELIVERED"), 74.0),
        (("success", "DELIVRD", "success", "DELIVERED"), 2.0),
        (("SUCCESS", "DELIVRD", "SUCCESS", "DELIVERED"), 1.0),
        (("发送成功", "DELIVRD", "发送成功", "DELIVERED"), 5.0),
        (("Sent successfully", "DELIVRD", "Sent successfully", "DELIVERED"), 3.0),
        (("Fail", "UNDELIV", "Fail", "UNDELIVERED"), 3.5),
        (("Fail", "EXPIRED", "Expired", "EXPIRED"), 2.0),
        (("Fail", "REJECTD", "Rejected", "REJECTED"), 1.5),
        (("发送失败", "MK:0001", "发送失败", "UNDELIVERED"), 1.0),
        (("Sending failed", "DB:0103", "Sending failed", "UNDELIVERED"), 1.0),
        (("Unknow", "UNKNOWN", "Unknow", "UNKNOWN"), 2.5),
        (("状态未知", "UNKNOWN", "状态未知", "UNKNOWN"), 0.5),
        (("Unknown state", "UNKNOWN", "Unknown state", "UNKNOWN"), 0.5),
        (("SubmitFail", "SUBFAIL", "Submit failed", "FAILED"), 1.5),
    )
    _USPEEDO_COUNTRIES: Final = _cumulative(
        ("CN", 30.0),
        ("IN", 15.0),
        ("US", 15.0),
        ("BR", 10.0),
        ("DE", 10.0),
        ("FR", 10.0),
        ("GB", 5.0),
        ("AF", 5.0),
    )

    def _uspeedo_recipient(self) -> tuple[Msg, Any]:
        if not self.uspeedo_open:
            rng = self.rng
            session = "".join(
                rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                for _ in range(8)
            )
            session += str(self._uid())  # unique, as the provider guarantees
            account = self.uspeedo_accounts[rng.randrange(3)]
            x = rng.random()
            size = 1 if x < 0.7 else rng.randint(2, 10) if x < 0.95 else rng.randint(11, 50)
            user_id = "" if rng.random() < 0.2 else str(rng.randrange(10**6))
            phones: list[tuple[str, str]] = []
            for _ in range(size):
                phone = _phone(rng, _pick(rng, self._USPEEDO_COUNTRIES))
                if phone not in phones:
                    phones.append(phone)
            for cc, nsn in phones:
                style = rng.random()  # < 0.85 country code without +; < 0.95 CountryCode; else +
                self.uspeedo_open.append(
                    (Msg(), (session, account, cc, nsn, style, user_id, rng.randint(1, 3)))
                )
        return self.uspeedo_open.pop()

    def _uspeedo(self, cap: int) -> Proto:
        rng = self.rng
        x = rng.random()
        channel = "poll" if x < 0.45 else "push"
        n = _batch(rng, cap)
        q = self._q(f"uspeedo.{channel}")
        reports = []
        if channel == "poll" and rng.random() < 0.12:  # a page overlapping the previous one
            reports = self.last_page.get("uspeedo", [])[-rng.randint(1, 10) :][:n]
        reports += q.take(self.now, n - len(reports))
        now_s = self.now // 1000
        while len(reports) < n:
            msg, fields = self._uspeedo_recipient()
            result = _pick(rng, self._USPEEDO_RESULTS)
            report = (msg, fields, result, now_s - rng.randint(1, 120))
            reports.append(report)
            if result[3] == "UNKNOWN" and rng.random() < 0.6:
                final = (msg, fields, _pick(rng, self._USPEEDO_RESULTS[:6]), now_s + 30)
                self._later(
                    f"uspeedo.{'push' if rng.random() < 0.5 else 'poll'}",
                    rng.randint(20_000, 600_000),
                    final,
                )
            elif result[3] != "UNKNOWN" and rng.random() < 0.006:  # a late, stale Unknow
                stale = (msg, fields, self._USPEEDO_RESULTS[10][0], now_s - 200)
                self._later("uspeedo.poll", rng.randint(20_000, 600_000), stale)
            other = "poll" if channel == "push" else "push"
            if rng.random() < (0.10 if channel == "push" else 0.05):  # same report, other channel
                self._later(f"uspeedo.{other}", rng.randint(10_000, 300_000), report)
        seen: Seen = []
        account = None
        if channel == "poll":
            self.last_page["uspeedo"] = reports
            sessions: dict[str, list[dict[str, Any]]] = {}
            for _msg, (session, acct, cc, nsn, style, user_id, cost), result, when in reports:
                item = {
                    "CostCount": cost,
                    "ReceiptTime": when,
                    "UserId": user_id,
                    "ReceiptCode": result[1],
                    "Phone": _uspeedo_phone(cc, nsn, style),
                    "ReceiptResult": result[0],
                    "ReceiptDesc": result[2],
                }
                if 0.85 <= style < 0.95:
                    item["CountryCode"] = cc
                sessions.setdefault(session, []).append(item)
                account = acct
            order = {s: i for i, s in enumerate(sessions)}
            for msg, _fields, result, _ in sorted(reports, key=lambda r: order[r[1][0]]):
                seen.append((msg, result[3]))
            data = [{"SessionNo": s, "ReceiptSet": items} for s, items in sessions.items()]
            body = _dumps({"Action": "GetUSMSSendReceiptResponse", "Data": data, "RetCode": 0})
            return Proto("uspeedo", "poll", "GetUSMSSendReceipt", body, seen, account=account)
        items = []
        for msg, (session, acct, cc, nsn, style, user_id, cost), result, when in reports:
            items.append(
                {
                    "SessionNo": session,
                    "Phone": f"+{cc}{nsn}" if style >= 0.95 else f"{cc}{nsn}",
                    "CostCount": cost,
                    "ReceiptTime": when,
                    "ReceiptResult": result[0],
                    "ReceiptCode": result[1],
                    "ReceiptDesc": result[2],
                    "UserId": user_id,
                }
            )
            seen.append((msg, result[3]))
            account = acct
        if x < 0.55:  # a bare array of the same objects
            body, fmt = _dumps(items), "push_array"
        else:
            envelope: dict[str, Any] = {"MsgType": 2, "Data": items}
            if rng.random() < 0.5 and account is not None:
                envelope["AccountId"] = int(account)
            body, fmt = _dumps(envelope), "push"
        proto = Proto("uspeedo", fmt, "push", body, seen, account=account)
        if rng.random() < 0.05:
            self._schedule(rng.randint(30_000, 120_000), proto)
            self.truth.retried_bodies += 1
        return proto

    # -- ultiroam: query_sms_result poll, sms_result and sms_deliver_status pushes --------------

    def _ultiroam_msg(self, gateway: int) -> tuple[Msg, Any]:
        rng = self.rng
        sn, tz = self.ultiroam_gateways[gateway]
        port = rng.randrange(32)
        refs = self.ultiroam_refs[gateway]
        ref_id = refs[port]
        refs[port] = (ref_id + 1) & 255
        x = rng.random()
        if x < 0.5:
            cc, nsn = _phone(rng, "CN")
            number = f"+{cc}{nsn}"
        elif x < 0.78:
            number = _phone(rng, "CN")[1]  # national: no rule makes it E.164, kept as sent
        elif x < 0.83:
            cc, nsn = _phone(rng, "CN")
            number = f"+{cc} {nsn[:3]}-{nsn[3:7]}-{nsn[7:]}"
        elif x < 0.86:
            number = (" 10086", "10010", "95588", " 1065502")[rng.randrange(4)]
        else:
            cc, nsn = _phone(rng, ("DE", "FR", "IN", "US")[rng.randrange(4)])
            number = f"+{cc}{nsn}"
        sent = local_text(self.now // 1000 - rng.randint(1, 30), tz or "UTC")
        imsi = f"4600046421480{port:02d}"
        return Msg(), (
            sn,
            tz,
            port,
            number,
            ref_id,
            sent,
            self._uid() % 100000,
            rng.randint(1, 3),
            imsi,
        )

    def _ultiroam(self, cap: int) -> Proto:
        rng = self.rng
        x = rng.random()
        kind = "query_sms_result" if x < 0.3 else "sms_deliver_status" if x < 0.6 else "sms_result"
        gateway = rng.randrange(len(self.ultiroam_gateways))
        sn, tz = self.ultiroam_gateways[gateway]
        q = self._q(f"ultiroam.{kind}.{gateway}")
        if kind == "sms_deliver_status":
            reports = q.take(self.now, min(rng.randint(1, 10), cap))
            if not reports:
                kind = "sms_result"
                q = self._q(f"ultiroam.{kind}.{gateway}")
        if kind != "sms_deliver_status":
            limit = min(
                rng.randint(1, 32) if kind == "query_sms_result" else rng.randint(1, 10), cap
            )
            reports = []
            if kind == "query_sms_result" and rng.random() < 0.15:
                reports = self.last_page.get(f"ultiroam.{gateway}", [])[-rng.randint(1, 8) :][
                    :limit
                ]
            reports += q.take(self.now, limit - len(reports))
            while len(reports) < limit:
                reports.append(self._ultiroam_new(gateway, kind))
            if kind == "query_sms_result":
                self.last_page[f"ultiroam.{gateway}"] = reports
        seen: Seen = []
        items = []
        for msg, f, status, with_user in reports:
            _sn, _tz, port, number, ref_id, sent, user_id, count, imsi = f
            if kind == "sms_deliver_status":
                code = status
                canon = (
                    "DELIVERED"
                    if code < 32
                    else "SENT"
                    if code < 64
                    else "UNDELIVERED"
                    if code < 96
                    else "EXPIRED"
                    if code < 128
                    else "UNDELIVERED"
                )
                items.append(
                    {
                        "port": port,
                        "number": number,
                        "time": sent,
                        "ref_id": ref_id,
                        "status_code": code,
                        "imsi": imsi,
                    }
                )
            else:
                canon = {
                    "SENDING": "PENDING",
                    "SENT_OK": "SENT",
                    "DELIVERED": "DELIVERED",
                    "FAILED": "FAILED",
                }[status]
                item: dict[str, Any] = {"port": port}
                if with_user or kind == "query_sms_result":
                    item["user_id"] = user_id
                ok = 0 if status in ("FAILED", "SENDING") else count
                item.update(
                    number=number,
                    time=sent,
                    status=status,
                    count=count,
                    succ_count=ok,
                    ref_id=ref_id,
                    imsi=imsi,
                )
                items.append(item)
            seen.append((msg, canon))
        if kind == "query_sms_result":
            body = _dumps({"error_code": 200, "sn": sn, "result": items})
            endpoint = "query_sms_result"
        else:
            body = _dumps({"sn": sn, kind: items})
            endpoint = "push"
        proto = Proto("ultiroam", kind, endpoint, body, seen, account=sn, tz=tz)
        if kind != "query_sms_result" and rng.random() < 0.05:  # the gateway pushed it twice
            self._schedule(rng.randint(1_000, 60_000), proto)
            self.truth.retried_bodies += 1
        return proto

    def _ultiroam_new(self, gateway: int, kind: str) -> Any:
        """A new message's first report, with its later reports scheduled."""
        rng = self.rng
        msg, f = self._ultiroam_msg(gateway)
        later = self._later
        x = rng.random()
        if x < 0.05:
            first = "FAILED"
        elif x < 0.10:
            first = "SENDING"
            later(
                f"ultiroam.{'sms_result' if rng.random() < 0.7 else 'query_sms_result'}.{gateway}",
                rng.randint(2_000, 30_000),
                (msg, f, "SENT_OK", rng.random() < 0.7),
            )
        else:
            first = "SENT_OK"
        if first != "FAILED":
            delay = rng.randint(3_000, 240_000)
            y = rng.random()
            deliver = f"ultiroam.sms_deliver_status.{gateway}"
            result = f"ultiroam.sms_result.{gateway}"
            if y < 0.45:
                later(deliver, delay, (msg, f, 0, False))
            elif y < 0.68:
                later(result, delay, (msg, f, "DELIVERED", rng.random() < 0.7))
            elif y < 0.76:  # both forms report the delivery: the second is a duplicate
                later(deliver, delay, (msg, f, 0, False))
                later(result, delay + rng.randint(500, 20_000), (msg, f, "DELIVERED", False))
            elif y < 0.80:
                later(deliver, delay, (msg, f, (65, 69, 70, 86)[rng.randrange(4)], False))
            elif y < 0.82:
                later(deliver, delay, (msg, f, (96, 97, 98)[rng.randrange(3)], False))
            elif y < 0.83:  # a report that the SMSC is still trying: SENT again
                later(deliver, delay, (msg, f, 32 + rng.randrange(4), False))
                later(deliver, delay + 60_000, (msg, f, 0, False))
            if first == "SENT_OK" and y < 0.68 and rng.random() < 0.06:
                # The SENT_OK report goes astray and turns up in a poll after the delivery
                # report: a late SENT after DELIVERED, stale. This message's first report is
                # lost, so another message's first report stands in.
                late = (msg, f, "SENT_OK", True)
                due = delay + rng.randint(30_000, 300_000)
                later(f"ultiroam.query_sms_result.{gateway}", due, late)
                return self._ultiroam_new(gateway, kind)
        report = (msg, f, first, rng.random() < 0.7)
        if kind != "query_sms_result" and rng.random() < 0.08:  # seen again by a poll
            later(f"ultiroam.query_sms_result.{gateway}", rng.randint(5_000, 60_000), report)
        return report

    # -- smspartner: bulk-status JSON, positional XML, single-message form ----------------------

    _SMSPARTNER_COUNTRIES: Final = _cumulative(
        ("FR", 86.0), ("BE", 5.0), ("DE", 4.0), ("GB", 3.0), ("US", 2.0)
    )

    def _smspartner_bulk(self) -> Any:
        rng = self.rng
        x = rng.random()
        fmt = "json" if x < 0.67 else "xml" if x < 0.93 else "single"
        if fmt == "single":
            size = 1
        else:
            y = rng.random()
            size = 1 if y < 0.3 else rng.randint(2, 20) if y < 0.7 else rng.randint(21, 100)
        self.smspartner_id += rng.randint(1, 9)
        sent = self.now // 1000 - rng.randint(20, 90)
        recipients = []
        numbers: list[str] = []
        for _ in range(size):
            cc, nsn = _phone(rng, _pick(rng, self._SMSPARTNER_COUNTRIES))
            if cc == "33" and rng.random() < 0.2:
                raw = (
                    f"0{nsn}"
                    if rng.random() < 0.75
                    else " ".join(f"0{nsn}"[i : i + 2] for i in range(0, 10, 2))
                )
            else:
                raw = f"+{cc}{nsn}"
            if nsn in numbers:
                continue
            numbers.append(nsn)
            final_after = int(rng.expovariate(1 / 90.0)) + 2  # seconds after sending
            final = "Delivered" if rng.random() < 0.9 else "Not delivered"
            recipients.append((Msg(), raw, sent + final_after, final, rng.random() < 0.02))
        dates = "epoch" if rng.random() < 0.8 else "local"
        return (str(self.smspartner_id), fmt, dates, sent, recipients, rng.random() < 0.5)

    def _smspartner(self, cap: int) -> Proto | None:
        rng = self.rng
        polls = self.smspartner_polls
        if polls and polls[0][0] <= self.now:
            _, _, number, bulk = heapq.heappop(polls)
            repoll = True
        else:
            bulk = self._smspartner_bulk()
            number = 0
            repoll = False
        message_id, fmt, dates, sent, recipients, pretty = bulk
        now_s = self.now // 1000
        # The client polls again later with decreasing probability (full list every time).
        if number < 2 and rng.random() < (0.35, 0.25)[number]:
            self.seq += 1
            due = self.now + (180_000, 900_000)[number] + rng.randrange(60_000)
            heapq.heappush(polls, (due, self.seq, number + 1, bulk))
        rows: list[tuple[Msg, str, str, str, bool]] = []
        seen: Seen = []
        for msg, raw, final_at, final, stop in recipients[:cap]:
            if final_at <= now_s and not (repoll and rng.random() < 0.015):
                status, when = final, final_at
            else:  # still waiting (or, in a re-poll, the provider's view regressed: stale)
                status, when = "Waiting", sent
            date = str(when) if dates == "epoch" else local_text(when, "Europe/Paris")
            rows.append((msg, raw, status, date, stop))
            seen.append(
                (
                    msg,
                    "SENT"
                    if status == "Waiting"
                    else "DELIVERED"
                    if status == "Delivered"
                    else "UNDELIVERED",
                )
            )
        if fmt == "single":
            msg, raw, status, date, stop = rows[0]
            body = _dumps(
                {
                    "success": True,
                    "code": 200,
                    "number": raw,
                    "messageId": int(message_id),
                    "stopSms": stop,
                    "date": date,
                    "statut": status,
                    "cost": 0.045,
                }
            )
            return Proto("smspartner", "single", "message-status", body, seen)
        if fmt == "json":
            body = _dumps(
                {
                    "success": True,
                    "code": 200,
                    "message_id": message_id,
                    "StatutResponse_List": [
                        {"phoneNumber": raw, "status": status, "stopSMS": stop, "date": date}
                        for _, raw, status, date, stop in rows
                    ],
                }
            )
            return Proto("smspartner", "json", "bulk-status", body, seen)
        body = _smspartner_xml(message_id, [(r, s, st, d) for _, r, s, d, st in rows], pretty)
        return Proto("smspartner", "xml", "bulk-status", body, seen, ctype="application/xml")

    # -- tencent: SendSms results, callback arrays, PullSmsSendStatus pages ---------------------

    _TENCENT_FINALS: Final = _cumulative(
        (("SUCCESS", "DELIVRD", "用户短信送达成功", "DELIVERED"), 88.0),
        (("FAIL", "UNDELIV", "用户停机", "UNDELIVERED"), 2.5),
        (("FAIL", "EXPIRED", "短信过期", "EXPIRED"), 2.0),
        (("FAIL", "REJECTD", "运营商拒收", "REJECTED"), 1.0),
        (("FAIL", "DELETED", "短信被删除", "DELETED"), 0.3),
        (("FAIL", "SUBFAIL", "提交失败", "FAILED"), 0.4),
        (("FAIL", "COMFAIL", "通信失败", "FAILED"), 0.3),
        (("FAIL", "WTNFAIL", "等待失败", "FAILED"), 0.2),
        (("FAIL", "MK:0001", "空号", "UNDELIVERED"), 1.3),
        (("FAIL", "DB:0103", "运营商内部错误", "UNDELIVERED"), 1.0),
        (("FAIL", "MSBLACK", "黑名单", "UNDELIVERED"), 0.5),
        (("UNKNOWN", "UNKNOWN", "状态未知", "UNKNOWN"), 2.5),
    )
    _TENCENT_COUNTRIES: Final = _cumulative(
        ("CN", 72.0), ("US", 8.0), ("FR", 6.0), ("IN", 6.0), ("BR", 4.0), ("DE", 4.0)
    )

    def _request_id(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _tencent(self, cap: int) -> Proto | None:
        rng = self.rng
        x = rng.random()
        channel = "SendSms" if x < 0.28 else "callback" if x < 0.68 else "PullSmsSendStatus"
        app = self.tencent_apps[rng.randrange(2)]
        if channel == "SendSms":
            return self._tencent_send(
                min(rng.randint(1, 50) if rng.random() < 0.7 else 1, cap), app
            )
        n = _batch(rng, cap)
        reports = []
        if channel == "PullSmsSendStatus" and rng.random() < 0.1:
            reports = self.last_page.get("tencent", [])[-rng.randint(1, 10) :][:n]
        reports += self._q(f"tencent.{channel}").take(self.now, n - len(reports))
        if not reports and channel == "callback":
            return self._tencent_send(min(rng.randint(1, 50), cap), app)
        seen: Seen = []
        if channel == "callback":
            items = []
            for msg, f, result, when, _ in reports:
                serial, cc, nsn, ctx, _fee, callback_mobile = f
                status, code, prose, canon = result
                items.append(
                    {
                        "user_receive_time": local_text(when, "Asia/Shanghai"),
                        "nationcode": cc,
                        "mobile": callback_mobile,
                        "report_status": status,
                        "errmsg": code,
                        "description": prose,
                        "sid": serial,
                    }
                )
                seen.append((msg, canon))
            proto = Proto("tencent", "callback", "callback", _dumps(items), seen, account=app)
            if rng.random() < 0.04:  # no timely 200 from us: Tencent calls back again
                self._schedule(rng.randint(5_000, 60_000), proto)
                self.truth.retried_bodies += 1
            return proto
        self.last_page["tencent"] = reports
        items = []
        for msg, f, result, when, uses_code in reports:
            serial, cc, nsn, ctx, _fee, _ = f
            status, code, prose, canon = result
            if not uses_code and status == "FAIL":
                canon = "UNDELIVERED"  # prose is no code: a FAIL without one is UNDELIVERED
            items.append(
                {
                    "UserReceiveTime": when,
                    "CountryCode": cc,
                    "SubscriberNumber": nsn,
                    "PhoneNumber": f"+{cc}{nsn}",
                    "SerialNo": serial,
                    "ReportStatus": status,
                    "Description": code if uses_code else prose,
                    "SessionContext": ctx,
                }
            )
            seen.append((msg, canon))
        body = _dumps(
            {"Response": {"PullSmsSendStatusSet": items, "RequestId": self._request_id()}}
        )
        return Proto("tencent", "PullSmsSendStatus", "PullSmsSendStatus", body, seen, account=app)

    _TENCENT_SEND_ERRORS: Final = (
        (
            "LimitExceeded.PhoneNumberDailyLimit",
            "the number of SMS messages sent from a single mobile number every day exceeds "
            "the upper limit",
        ),
        ("InvalidParameterValue.IncorrectPhoneNumber", "invalid mobile number"),
        ("FailedOperation.InsufficientBalanceInSmsPackage", "insufficient balance in SMS package"),
        ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verification failed"),
    )

    def _tencent_send(self, n: int, app: str) -> Proto | None:
        rng = self.rng
        items = []
        seen: Seen = []
        request_id = self._request_id()
        ctx = "" if rng.random() < 0.5 else f"order-{rng.randrange(10**8)}"
        fee = 1 if rng.random() < 0.8 else 2
        late = rng.random() < 0.01  # the ingress lands this answer minutes late
        numbers: list[str] = []
        for _ in range(n):
            cc, nsn = _phone(rng, _pick(rng, self._TENCENT_COUNTRIES))
            if nsn in numbers:
                continue
            numbers.append(nsn)
            msg = Msg()
            if rng.random() < 0.04:
                code, message = self._TENCENT_SEND_ERRORS[rng.randrange(4)]
                items.append(
                    {
                        "SerialNo": "",
                        "PhoneNumber": f"+{cc}{nsn}",
                        "Fee": 0,
                        "SessionContext": ctx,
                        "Code": code,
                        "Message": message,
                        "IsoCode": "CN" if cc == "86" else "DEF",
                    }
                )
                seen.append((msg, "FAILED"))
                continue
            serial = f"{rng.randint(2000, 5000)}:{rng.getrandbits(90)}"
            callback_mobile = f"0{nsn}" if cc == "33" and rng.random() < 0.5 else nsn
            f = (serial, cc, nsn, ctx, fee, callback_mobile)
            items.append(
                {
                    "SerialNo": serial,
                    "PhoneNumber": f"+{cc}{nsn}",
                    "Fee": fee,
                    "SessionContext": ctx,
                    "Code": "Ok",
                    "Message": "send success",
                    "IsoCode": "CN" if cc == "86" else "DEF",
                }
            )
            seen.append((msg, "PENDING"))
            if rng.random() < 0.96:
                result = _pick(rng, self._TENCENT_FINALS)
                delay = rng.randint(3_000, 180_000)
                when = self.now // 1000 + delay // 1000
                report = (msg, f, result, when, rng.random() < 0.65)
                x = rng.random()
                if x < 0.6:
                    self._later("tencent.callback", delay, report)
                else:
                    self._later("tencent.PullSmsSendStatus", delay + rng.randint(0, 60_000), report)
                if rng.random() < 0.12:  # both: pulled and called back
                    other = "tencent.PullSmsSendStatus" if x < 0.6 else "tencent.callback"
                    self._later(other, delay + rng.randint(1_000, 120_000), report)
                if result[0] == "UNKNOWN" and rng.random() < 0.5:
                    final = (msg, f, self._TENCENT_FINALS[0][0], when + 60, True)
                    self._later("tencent.callback", delay + rng.randint(60_000, 600_000), final)
        body = _dumps({"Response": {"SendStatusSet": items, "RequestId": request_id}})
        proto = Proto("tencent", "SendSms", "SendSms", body, seen, account=app)
        if late:
            self._schedule(rng.randint(120_000, 600_000), proto)
            self.truth.delayed_bodies += 1
            return None
        return proto

    # -- non-receipts and malformed bodies --------------------------------------------------------

    def _non_receipt(self) -> Proto:
        rng = self.rng
        kind = NON_RECEIPT_KINDS[rng.randrange(len(NON_RECEIPT_KINDS))]
        now_s = self.now // 1000
        if kind == "uspeedo.inbound":
            body = _dumps(
                {
                    "MsgType": 0,
                    "Data": {
                        "Phone": f"86{_phone(rng, 'CN')[1]}",
                        "Content": "TD",
                        "ReceiveTime": now_s,
                    },
                }
            )
            return Proto("uspeedo", kind, "push", body, [], kind="non_receipt")
        if kind in ("ultiroam.sms", "ultiroam.ussd"):
            sn, tz = self.ultiroam_gateways[rng.randrange(len(self.ultiroam_gateways))]
            if kind == "ultiroam.sms":
                items = [
                    {
                        "port": rng.randrange(32),
                        "number": f"+86{_phone(rng, 'CN')[1]}",
                        "time": local_text(now_s, tz or "UTC"),
                        "text": "Your code is 4711",
                        "imsi": "460004642148063",
                    }
                ]
            else:
                items = [
                    {
                        "port": rng.randrange(32),
                        "text": "Balance: 12.50 CNY",
                        "imsi": "460004642148063",
                    }
                ]
            body = _dumps({"sn": sn, kind.split(".")[1]: items})
            return Proto("ultiroam", kind, "push", body, [], kind="non_receipt", account=sn, tz=tz)
        app = self.tencent_apps[0]
        if kind == "tencent.reply":
            cc, nsn = _phone(rng, "CN")
            reply = {
                "ExtendCode": "01",
                "CountryCode": cc,
                "PhoneNumber": f"+{cc}{nsn}",
                "SignName": "腾讯云",
                "ReplyContent": "退订",
                "ReplyTime": now_s,
                "SubscriberNumber": nsn,
            }
            body = _dumps(
                {"Response": {"PullSmsReplyStatusSet": [reply], "RequestId": self._request_id()}}
            )
            return Proto(
                "tencent", kind, "PullSmsReplyStatus", body, [], kind="non_receipt", account=app
            )
        if kind == "tencent.reply_callback":
            cc, nsn = _phone(rng, "CN")
            body = _dumps(
                [
                    {
                        "extend": "01",
                        "mobile": nsn,
                        "nationcode": cc,
                        "sign": "腾讯云",
                        "text": "退订",
                        "time": now_s,
                    }
                ]
            )
            return Proto("tencent", kind, "callback", body, [], kind="non_receipt", account=app)
        if rng.random() < 0.5:
            stats = {"FeeCount": 120, "RequestCount": 100, "RequestSuccessCount": 98}
            body = _dumps(
                {"Response": {"SendStatusStatistics": stats, "RequestId": self._request_id()}}
            )
            endpoint = "SendStatusStatistics"
        else:
            stats = {
                "CallbackCount": 98,
                "RequestSuccessCount": 98,
                "CallbackFailCount": 3,
                "CallbackSuccessCount": 95,
                "InternalErrorCount": 0,
                "InvalidNumberCount": 1,
                "ShutdownErrorCount": 1,
                "BlackListCount": 1,
                "FrequencyLimitCount": 0,
            }
            body = _dumps(
                {"Response": {"CallbackStatusStatistics": stats, "RequestId": self._request_id()}}
            )
            endpoint = "CallbackStatusStatistics"
        return Proto(
            "tencent", "tencent.statistics", endpoint, body, [], kind="non_receipt", account=app
        )

    def _sample(self, provider: str) -> tuple[str, Any, str]:
        """A small valid body's object (not tracked by the truth) for a malformed variant:
        (endpoint, object, list key path) where the object is JSON-able."""
        rng = self.rng
        now_s = self.now // 1000
        cc, nsn = _phone(rng, "CN")
        if provider == "uspeedo":
            item = {
                "CostCount": 1,
                "ReceiptTime": now_s,
                "UserId": "7",
                "ReceiptCode": "DELIVRD",
                "Phone": f"{cc}{nsn}",
                "ReceiptResult": "Success",
                "ReceiptDesc": "Success",
            }
            obj = {
                "Action": "GetUSMSSendReceiptResponse",
                "Data": [{"SessionNo": "Zq81xWcT9", "ReceiptSet": [item, dict(item)]}],
                "RetCode": 0,
            }
            return "GetUSMSSendReceipt", obj, "Phone"
        if provider == "ultiroam":
            sn = self.ultiroam_gateways[0][0]
            item = {
                "port": 3,
                "user_id": 9,
                "number": f"+{cc}{nsn}",
                "time": local_text(now_s, "Asia/Shanghai"),
                "status": "SENT_OK",
                "count": 1,
                "succ_count": 1,
                "ref_id": 17,
                "imsi": "460004642148063",
            }
            return (
                "query_sms_result",
                {"error_code": 200, "sn": sn, "result": [item, dict(item)]},
                "number",
            )
        if provider == "yunpian":
            item = {
                "error_detail": "接收成功",
                "sid": 9527,
                "uid": "abc",
                "user_receive_time": local_text(now_s, "Asia/Shanghai"),
                "error_msg": "DELIVRD",
                "mobile": nsn,
                "report_status": "SUCCESS",
            }
            return "push", [item, dict(item)], "mobile"
        if provider == "smspartner":
            item = {
                "phoneNumber": f"+33{_phone(rng, 'FR')[1]}",
                "status": "Delivered",
                "stopSMS": False,
                "date": str(now_s),
            }
            return (
                "bulk-status",
                {
                    "success": True,
                    "code": 200,
                    "message_id": "300",
                    "StatutResponse_List": [item, dict(item)],
                },
                "phoneNumber",
            )
        item = {
            "UserReceiveTime": now_s,
            "CountryCode": cc,
            "SubscriberNumber": nsn,
            "PhoneNumber": f"+{cc}{nsn}",
            "SerialNo": "2640:1503391210917236400210591173",
            "ReportStatus": "SUCCESS",
            "Description": "DELIVRD",
            "SessionContext": "",
        }
        return (
            "PullSmsSendStatus",
            {
                "Response": {
                    "PullSmsSendStatusSet": [item, dict(item)],
                    "RequestId": self._request_id(),
                }
            },
            "PhoneNumber",
        )

    def _malformed(self) -> Proto:
        rng = self.rng
        kind = _pick(rng, _MALFORMED_WEIGHTS)
        provider = ("uspeedo", "ultiroam", "yunpian", "smspartner", "tencent")[rng.randrange(5)]
        if kind == "entity_bomb":
            return Proto(
                "smspartner",
                kind,
                "bulk-status",
                ENTITY_BOMB,
                [],
                kind=kind,
                ctype="application/xml",
            )
        if kind == "garbage":
            body = (b"", b"<html><body><h1>502 Bad Gateway</h1></body></html>", b"OK", b"null")[
                rng.randrange(4)
            ]
            return Proto(
                provider,
                kind,
                "push" if provider in ("yunpian", "uspeedo") else "poll",
                body,
                [],
                kind=kind,
            )
        if kind == "provider_error":
            return self._provider_error()
        endpoint, obj, phone_key = self._sample(provider)
        ctype = "application/json"
        if kind == "wrong_type":
            _wrong_type(rng, obj, phone_key)
        if kind == "invalid_utf8":
            _set_phone(obj, phone_key, "INVALIDUTF8MARKER")
        if provider == "yunpian":
            ctype = "application/x-www-form-urlencoded"
            body = _yunpian_body(obj, False, False)
        elif provider == "smspartner" and kind == "truncated" and rng.random() < 0.5:
            rows = [
                (i["phoneNumber"], i["status"], i["stopSMS"], i["date"])
                for i in obj["StatutResponse_List"]
            ]
            body = _smspartner_xml(obj["message_id"], rows, rng.random() < 0.5)
            ctype = "application/xml"
        else:
            body = _dumps(obj)
        if kind == "invalid_utf8":
            bad = b"%FF%FE" if provider == "yunpian" and rng.random() < 0.5 else b"\xff\xfe"
            body = body.replace(b"INVALIDUTF8MARKER", bad + b"138")
        elif kind == "truncated":
            body = body[: rng.randint(1, len(body) - 2)]
        return Proto(provider, kind, endpoint, body, [], kind=kind, ctype=ctype)

    def _provider_error(self) -> Proto:
        rng = self.rng
        provider = ("uspeedo", "ultiroam", "smspartner", "smspartner", "tencent")[rng.randrange(5)]
        if provider == "uspeedo":
            body = _dumps(
                {
                    "Action": "GetUSMSSendReceiptResponse",
                    "Message": "Missing params 'SessionNoSet'",
                    "RetCode": 215397,
                }
            )
            return Proto(
                provider, "provider_error", "GetUSMSSendReceipt", body, [], kind="provider_error"
            )
        if provider == "ultiroam":
            sn = self.ultiroam_gateways[0][0]
            body = _dumps({"error_code": (400, 413, 500)[rng.randrange(3)], "sn": sn})
            return Proto(
                provider,
                "provider_error",
                "query_sms_result",
                body,
                [],
                kind="provider_error",
                account=sn,
            )
        if provider == "smspartner":
            code, text = (
                (1, "La clé API est requise"),
                (3, "L'ID du message est requis"),
                (4, "Message non trouvé"),
                (10, "Clé API incorrecte"),
            )[rng.randrange(4)]
            if rng.random() < 0.5:
                body = _dumps({"success": False, "code": code, "message": text})
                return Proto(
                    provider, "provider_error", "bulk-status", body, [], kind="provider_error"
                )
            body = (
                "<?xml version='1.0' encoding='UTF-8'?>\n<result>\n<entry>false</entry>\n"
                f"<entry>{code}</entry>\n"
                f"<entry>{text}</entry>\n</result>"
            ).encode()
            return Proto(
                provider,
                "provider_error",
                "bulk-status",
                body,
                [],
                kind="provider_error",
                ctype="application/xml",
            )
        body = _dumps(
            {
                "Response": {
                    "Error": {
                        "Code": "AuthFailure.SignatureFailure",
                        "Message": "The provided credentials could not be validated. "
                        "Please check your signature is correct.",
                    },
                    "RequestId": self._request_id(),
                }
            }
        )
        return Proto(
            provider, "provider_error", "PullSmsSendStatus", body, [], kind="provider_error"
        )


_MALFORMED_WEIGHTS: Final = _cumulative(
    ("truncated", 35.0),
    ("invalid_utf8", 15.0),
    ("wrong_type", 20.0),
    ("provider_error", 22.0),
    ("entity_bomb", 4.0),
    ("garbage", 4.0),
)

ENTITY_BOMB: Final = (
    b'<?xml version="1.0"?>\n<!DOCTYPE result [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n'
        % (i, b"".join(b"&lol%s;" % (b"" if i == 1 else str(i - 1).encode()) for _ in range(10)))
        for i in range(1, 10)
    )
    + b"]>\n<result><entry>true</entry><entry>200</entry><entry>&lol9;</entry></result>"
)


def _set_phone(obj: Any, key: str, value: Any) -> None:
    """Set `key` of the first report of a sample object."""
    _reports(obj)[0][key] = value


def _reports(obj: Any) -> list[Any]:
    if isinstance(obj, list):
        return obj
    if "Response" in obj:
        return obj["Response"]["PullSmsSendStatusSet"]  # type: ignore[no-any-return]
    if "Data" in obj:
        return obj["Data"][0]["ReceiptSet"]  # type: ignore[no-any-return]
    if "result" in obj:
        return obj["result"]  # type: ignore[no-any-return]
    return obj["StatutResponse_List"]  # type: ignore[no-any-return]


def _wrong_type(rng: random.Random, obj: Any, phone_key: str) -> None:
    """One of: the report list is a string, every report is a number, every phone number is a
    number. Every report is wrong, so the body is dead-lettered whole (one bad report among good
    ones is a PartialBody, tested in tests/pipeline/test_hostile.py)."""
    x = rng.randrange(3)
    reports = _reports(obj)
    if x == 0:
        for report in reports:
            report[phone_key] = 8613800138000
    elif x == 1:
        reports[:] = [42] * len(reports)
    elif isinstance(obj, list):
        obj[:] = [{"sms_status": "none"}, "oops"]  # not a report, and a string in the list
    elif "Response" in obj:
        obj["Response"]["PullSmsSendStatusSet"] = "none"
    elif "Data" in obj:
        obj["Data"] = "none"
    elif "result" in obj:
        obj["result"] = "none"
    else:
        obj["StatutResponse_List"] = "none"


def _uspeedo_phone(cc: str, nsn: str, style: float) -> str:
    """Mostly the country code without `+`; a national number beside `CountryCode`; or E.164."""
    return f"{cc}{nsn}" if style < 0.85 else nsn if style < 0.95 else f"+{cc}{nsn}"


def _yunpian_body(items: Any, php: bool, double: bool) -> bytes:
    text = (_dumps_ascii(items) if php else _dumps(items)).decode()
    value = quote_plus(text)
    if double:
        value = quote_plus(value)
    return b"sms_status=" + value.encode()


def _smspartner_xml(message_id: str, rows: list[tuple[str, str, bool, str]], pretty: bool) -> bytes:
    """The positional XML of the seed: success, code, message_id, then a list of recipients."""
    if pretty:
        parts = [
            "<?xml version='1.0' encoding='UTF-8'?>\n<result>\n"
            "  <entry>true</entry>\n  <entry>200</entry>\n",
            f"  <entry>\n    <![CDATA[{message_id}]]>\n  </entry>\n  <entry>\n",
        ]
        for phone, status, stop, date in rows:
            parts.append(
                f"    <entry>\n      <entry>\n        <![CDATA[{phone}]]>\n      </entry>\n"
                f"      <entry>\n        <![CDATA[{status}]]>\n      </entry>\n"
                f"      <entry>{'true' if stop else 'false'}</entry>\n"
                f"      <entry>\n        <![CDATA[{date}]]>\n      </entry>\n    </entry>\n"
            )
        parts.append("  </entry>\n</result>\n")
    else:
        parts = [
            "<?xml version='1.0' encoding='UTF-8'?><result><entry>true</entry><entry>200</entry>",
            f"<entry><![CDATA[{message_id}]]></entry><entry>",
        ]
        for phone, status, stop, date in rows:
            parts.append(
                f"<entry><entry><![CDATA[{phone}]]></entry><entry><![CDATA[{status}]]></entry>"
                f"<entry>{'true' if stop else 'false'}</entry>"
                f"<entry><![CDATA[{date}]]></entry></entry>"
            )
        parts.append("</entry></result>")
    return "".join(parts).encode()


# -- public API ---------------------------------------------------------------------------------


def parse_start(start: str | int) -> int:
    """Epoch milliseconds of an RFC 3339 time (or of an int of epoch milliseconds)."""
    if isinstance(start, int):
        return start
    moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def generate(
    seed: int,
    receipts: int,
    *,
    start: str | int = DEFAULT_START,
    span_s: float = DEFAULT_SPAN_S,
    truth: Truth | None = None,
) -> Iterator[InputRecord]:
    """Records carrying exactly `receipts` receipt reports (plus malformed and non-receipt
    bodies), deterministic from `seed`. Pass a `Truth` to collect the ground truth."""
    return Generator(seed, receipts, parse_start(start), span_s, truth).records()


def generate_corpus(seed: int, receipts: int, **kwargs: Any) -> tuple[list[InputRecord], Truth]:
    """The whole corpus in memory, with its ground truth."""
    truth = Truth()
    records = list(generate(seed, receipts, truth=truth, **kwargs))
    return records, truth


def kcat_line(record: InputRecord) -> bytes:
    """One kcat `-J` JSON line (no trailing newline); `payload_b64` for a body that is not UTF-8."""
    flat: list[str] = []
    for key, value in record.headers:
        flat += [key, value.decode()]
    envelope: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "ts": record.timestamp_ms,
        "headers": flat,
        "key": None,
    }
    try:
        envelope["payload"] = record.value.decode()
    except UnicodeDecodeError:
        envelope["payload"] = None
        envelope["payload_b64"] = base64.b64encode(record.value).decode()
    return orjson.dumps(envelope)


def write_jsonl(records: Iterator[InputRecord], out: IO[bytes]) -> int:
    count = 0
    for record in records:
        out.write(kcat_line(record) + b"\n")
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--receipts", type=int, default=100_000)
    parser.add_argument("--out", default="-", help="JSON-lines file, or - for stdout")
    parser.add_argument("--start", default=DEFAULT_START, help="RFC 3339 time of the first record")
    parser.add_argument(
        "--span-s",
        type=float,
        default=DEFAULT_SPAN_S,
        help="seconds of record time the corpus spans",
    )
    args = parser.parse_args(argv)
    truth = Truth()
    started = time.perf_counter()
    records = generate(args.seed, args.receipts, start=args.start, span_s=args.span_s, truth=truth)
    if args.out == "-":
        write_jsonl(records, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        with open(args.out, "wb") as out:
            write_jsonl(records, out)
    seconds = time.perf_counter() - started
    summary = truth.as_dict()
    print(
        f"corpus: seed={args.seed} records={summary['records']} receipts={summary['receipts']} "
        f"bytes={summary['bytes']} duplicates={summary['duplicates']} stale={summary['stale']} "
        f"malformed={summary['malformed']} non_receipts={summary['non_receipts']} "
        f"headered={summary['headered']} in {seconds:.2f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

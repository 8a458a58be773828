"""What the corpus holds: formats, the ground truth a window must reproduce, records to be."""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

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

BIT: Final[dict[str, int]] = {s: 1 << i for i, s in enumerate(STATUSES)}

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

"""What the providers' decoders share: failures, helpers, times, recipients, `Context`, `event`."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

MAX_BODY_BYTES = 8 * 1024 * 1024
RANKS = {"PENDING": 1, "SENT": 2, "UNKNOWN": 3}  # every final: 4
DEFAULT_ZONES = {
    "yunpian": "Asia/Shanghai",
    "tencent": "Asia/Shanghai",
    "smspartner": "Europe/Paris",
    "ultiroam": "UTC",
}
# uSpeedo and Yunpian, as the contract's uSpeedo and Yunpian sections (docs/contract.md,
# "The providers") word it: a failure is UNDELIVERED, "or EXPIRED when the code is
# `EXPIRED`, REJECTED when it is `REJECTD`". Grouped by the status a code leads to.
CARRIER_FAIL_GROUPS: dict[str, tuple[str, ...]] = {
    "EXPIRED": ("EXPIRED",),
    "REJECTED": ("REJECTD",),
}


def grouped(
    groups: dict[str, tuple[str, ...]], value: str | None, fold: bool = False
) -> str | None:
    """The status whose group lists `value` (compared lower-cased when `fold`), else None."""
    if value is None:
        return None
    wanted = value.lower() if fold else value
    for status, members in groups.items():
        if wanted in ((m.lower() for m in members) if fold else members):
            return status
    return None


def refine_failure(status: str, code: str | None, groups: dict[str, tuple[str, ...]]) -> str:
    """An UNDELIVERED report whose code one of `groups` lists takes that group's status."""
    if status != "UNDELIVERED":
        return status
    return grouped(groups, code) or status


class Failure(Exception):
    """A record that becomes a dead letter; `error_class` as the pipeline names it."""

    error_class = "MalformedBody"


class Unsafe(Failure):
    error_class = "UnsafeXml"


class Unknown(Failure):
    error_class = "UnknownFormat"


class ProviderFailure(Failure):
    error_class = "ProviderError"


class TooLarge(Failure):
    error_class = "BodyTooLarge"


class NotReceipts(Exception):
    pass


class Output(NamedTuple):
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


# -- helpers --------------------------------------------------------------------------------------


def load_json(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Failure(f"invalid JSON: {exc}") from None


def require(obj: Any, key: str, kinds: type | tuple[type, ...], optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise Failure(f"missing {key}")
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise Failure(f"{key} has the wrong type")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise Failure(f"{what} is not a list")
    for item in value:
        if not isinstance(item, dict):
            raise Failure(f"{what} holds a non-object")
    return value


def text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def rfc3339(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond // 1000:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def from_epoch(seconds: int | str) -> str:
    try:
        value = int(seconds)
        if value < 0:
            raise ValueError("negative")
        return rfc3339(datetime.fromtimestamp(value, UTC))
    except (ValueError, OverflowError, OSError) as exc:
        raise Failure(f"bad epoch {seconds!r}") from exc


def from_local(text: str, zone: str) -> str:
    try:
        naive = datetime.strptime(" ".join(text.split()), "%Y-%m-%d %H:%M:%S")
        return rfc3339(naive.replace(tzinfo=ZoneInfo(zone)))
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise Failure(f"bad time {text!r}") from exc


def when(value: Any, zone: str) -> tuple[str | None, str | None, str | None]:
    """(occurred_at, occurred_at_raw, time_zone) of an epoch or a naive local time."""
    if value is None or value == "":
        return None, None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return from_epoch(value), str(value), None
    if not isinstance(value, str):
        raise Failure("time has the wrong type")
    if re.fullmatch(r"[0-9]+", value.strip()):
        return from_epoch(value.strip()), value, None
    return from_local(value, zone), value, zone


# Phone numbers: the contract's phone rules decide whether a number can be written in E.164;
# phonenumbers writes it.


def cn_rule(digits: str) -> str | None:
    return "+86" + digits if len(digits) == 11 and digits.startswith("1") else None


def cc_rule(digits: str) -> str | None:
    return None if digits.startswith("0") else "+" + digits


def fr_rule(digits: str) -> str | None:
    return "+33" + digits[1:] if len(digits) == 10 and digits.startswith("0") else None


PHONE_STATS: Counter[str] = Counter()


def recipient(
    raw: str, country_code: Any = None, rule: Callable[[str], str | None] | None = None
) -> str:
    cleaned = re.sub(r"[ \-()]", "", raw.strip())
    candidate = None
    if cleaned.startswith("+"):
        if re.fullmatch(r"[0-9]+", cleaned[1:]):
            candidate = cleaned
    elif re.fullmatch(r"[0-9]+", cleaned):
        code = str(country_code).strip().lstrip("+") if country_code is not None else ""
        if re.fullmatch(r"[0-9]+", code):
            candidate = "+" + code + (cleaned[1:] if cleaned.startswith("0") else cleaned)
        elif rule is not None:
            candidate = rule(cleaned)
    if candidate is None:
        return raw.strip()
    try:
        formatted = phonenumbers.format_number(
            phonenumbers.parse(candidate, None), phonenumbers.PhoneNumberFormat.E164
        )
    except phonenumbers.NumberParseException:
        PHONE_STATS["unparsable"] += 1
        return candidate
    if formatted != candidate:
        # phonenumbers "corrects" some numbers (a national prefix after the country code); the
        # contract keeps the digits as given.
        PHONE_STATS["corrected"] += 1
        return candidate
    return formatted


class Context(NamedTuple):
    topic: str
    partition: int
    offset: int
    observed_at: str
    account: str | None
    tz: str | None


def event(
    ctx: Context,
    provider: str,
    channel: str,
    endpoint: str,
    index: int,
    message_key: str,
    status: str,
    provider_status: str,
    recipient_raw: str,
    recipient_e164: str,
    **fields: Any,
) -> dict[str, Any]:
    digest = hashlib.blake2b(f"{provider}\x1f{message_key}\x1f{status}".encode(), digest_size=16)
    rank = RANKS.get(status, 4)
    account = ctx.account if ctx.account is not None else fields.get("account")
    return {
        "v": 1,
        "event_id": digest.hexdigest(),
        "provider": provider,
        "account": account,
        "channel": channel,
        "endpoint": endpoint,
        "message_key": message_key,
        "message_id": fields.get("message_id"),
        "batch_id": fields.get("batch_id"),
        "client_ref": fields.get("client_ref") or None,
        "recipient": recipient_e164,
        "recipient_raw": recipient_raw,
        "status": status,
        "finality": "intermediate" if rank < 3 else "soft_final" if rank == 3 else "final",
        "provider_status": provider_status,
        "provider_code": fields.get("provider_code"),
        "provider_message": fields.get("provider_message"),
        "segments": fields.get("segments"),
        "segments_ok": fields.get("segments_ok"),
        "opt_out": fields.get("opt_out"),
        "occurred_at": fields.get("occurred_at"),
        "occurred_at_raw": fields.get("occurred_at_raw"),
        "sent_at": fields.get("sent_at"),
        "time_zone": fields.get("time_zone"),
        "observed_at": ctx.observed_at,
        "source": {
            "topic": ctx.topic,
            "partition": ctx.partition,
            "offset": ctx.offset,
            "index": index,
        },
    }

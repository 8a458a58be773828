from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.normalise import (
    UNMAPPED_STATUSES,
    RecordContext,
    e164,
    make_event,
    map_status,
    national_cn,
    national_fr,
    national_with_cc,
)
from schemas import Provider, Status


@pytest.mark.parametrize(
    ("raw", "cc", "rule", "expected"),
    [
        ("+8613711112222", None, None, "+8613711112222"),  # already E.164: kept
        ("+86 137-1111-2222", None, None, "+8613711112222"),  # separators stripped
        ("(+33) 6 12 34 56 78", None, None, "+33612345678"),
        ("13711112222", "86", None, "+8613711112222"),  # separate country code
        ("0612345678", "33", None, "+33612345678"),  # leading national 0 stripped
        ("15205201314", None, national_cn, "+8615205201314"),  # Yunpian mainland
        ("10086", None, national_cn, "10086"),  # short code stays raw
        ("8618512345678", None, national_with_cc, "+8618512345678"),  # uSpeedo
        ("10086", None, national_with_cc, "10086"),  # uSpeedo short code
        ("06 12 34 56 78", None, national_fr, "+33612345678"),  # SMS Partner national
        (" 10086", None, None, "10086"),  # trimmed raw
        ("QbPtKJPa", None, national_with_cc, "QbPtKJPa"),  # placeholder: raw
        ("+12ab", None, None, "+12ab"),
        ("", None, None, ""),
    ],
)
def test_e164_rules(raw: str, cc: str | None, rule: object, expected: str) -> None:
    assert e164(raw, cc, rule) == expected  # type: ignore[arg-type]


def event_id(provider: Provider, key: str, status: Status) -> str:
    """The id of an event make_event builds for (provider, message_key, status)."""
    ctx = RecordContext("t", 0, 1, 1_700_000_000_000, None, None, "2023-11-14T22:13:20Z")
    return make_event(
        ctx, provider, "push", f"{provider}.push", 0, None, key, key, None, None, "+1", "+1",
        status, status, None, None, None, None, None, None, None, None, None,
    ).event_id  # fmt: skip


def test_event_id_is_stable_across_processes() -> None:
    here = event_id("yunpian", "9527", "DELIVERED")
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from test_fields import event_id; "
        "print(event_id('yunpian', '9527', 'DELIVERED'))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there
    assert len(here) == 32 and int(here, 16) >= 0


def test_event_id_separates_identities() -> None:
    ids = {
        event_id("yunpian", "1", "DELIVERED"),
        event_id("yunpian", "1", "UNDELIVERED"),
        event_id("yunpian", "2", "DELIVERED"),
        event_id("tencent", "1", "DELIVERED"),
    }
    assert len(ids) == 4


def test_unmapped_status_is_unknown_and_counted() -> None:
    before = UNMAPPED_STATUSES["yunpian"]
    assert map_status("yunpian", {"SUCCESS": "DELIVERED"}, "WHATEVER") == "UNKNOWN"
    assert map_status("yunpian", {"SUCCESS": "DELIVERED"}, "SUCCESS") == "DELIVERED"
    assert UNMAPPED_STATUSES["yunpian"] == before + 1

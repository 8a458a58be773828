from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.core.normalise import RecordContext, make_event
from schemas import Provider, Status


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

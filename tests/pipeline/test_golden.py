"""Golden files: for each format a raw body and the exact event lines it must produce."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pipeline.core import sniff
from pipeline.core.normalise import RecordContext
from pipeline.core.providers import REGISTRY

GOLDEN = Path(__file__).parent.parent / "golden"
BODIES = sorted(GOLDEN.glob("*/*.body"))


def test_every_provider_has_golden_files() -> None:
    assert {p.parent.name for p in BODIES} == set(REGISTRY)


@pytest.mark.parametrize("body_path", BODIES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(body_path: Path) -> None:
    body = body_path.read_bytes()
    expected = body_path.with_suffix(".expected.jsonl").read_bytes().splitlines()
    route = sniff(body)
    assert route is not None, "golden bodies carry no headers: the shape must be recognised"
    assert route.provider == body_path.parent.name
    assert route.endpoint is not None
    ctx = RecordContext(topic="golden", partition=0, offset=7, timestamp_ms=1_700_000_000_000)
    events = REGISTRY[route.provider].decode(body, route.endpoint, ctx)
    assert [msgspec.json.encode(e) for e in events] == expected


@pytest.mark.parametrize("body_path", BODIES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_exactly_one_provider_recognises_each_format(body_path: Path) -> None:
    body = body_path.read_bytes()
    owners = [name for name, module in REGISTRY.items() if module.sniff(body) is not None]
    assert owners == [body_path.parent.name]

"""The embedded run mode on the bundled sample stream: exact expected output.

The stream (pipeline/sample/stream.jsonl) holds all five providers with a provider retry, push and
poll overlapping, late intermediate statuses after finals, non-receipt bodies, an undecodable, an
unrecognisable and a provider-error record, and records without headers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "pipeline/sample/stream.jsonl"
DATA = ROOT / "tests/data"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )


def test_sample_stream_exact_output(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = run("--from", str(SAMPLE), "--to", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (DATA / "sample_stream.expected.jsonl").read_bytes()
    dead = tmp_path / "events.jsonl.deadletter.jsonl"
    assert dead.read_bytes() == (DATA / "sample_stream.deadletter.jsonl").read_bytes()
    summary = result.stderr.decode()
    assert "21 records in, 64 receipts decoded, 48 events out, 14 duplicates, 2 stale, " in summary
    assert "3 dead-lettered, 2 skipped" in summary


def test_sample_stream_decisions() -> None:
    events = [
        json.loads(x) for x in (DATA / "sample_stream.expected.jsonl").read_text().splitlines()
    ]
    identities = [(e["provider"], e["message_key"], e["status"]) for e in events]
    assert len(identities) == len(set(identities)), "an identity was emitted twice"
    # The Yunpian retry five minutes later (offset 19) and the double-encoded copy emit nothing.
    assert not [e for e in events if e["source"]["offset"] in (19, 20)]
    # Late intermediates after a final are stale: Ultiroam SENT_OK (offset 9, index 0) and the
    # Tencent submit result for a message already EXPIRED (offset 3, index 0).
    assert not [
        e for e in events if (e["source"]["offset"], e["source"]["index"]) in ((9, 0), (3, 0))
    ]
    # Unlabelled records were recognised by shape.
    assert {e["source"]["offset"] for e in events} >= {1, 6, 10, 12}
    dead = [
        json.loads(x) for x in (DATA / "sample_stream.deadletter.jsonl").read_text().splitlines()
    ]
    classes = [
        dict(zip(d["headers"][::2], d["headers"][1::2], strict=True))["error.class"] for d in dead
    ]
    assert classes == ["MalformedBody", "UnknownFormat", "ProviderError"]


def test_stdin_to_stdout_with_dead_letters_on_stderr() -> None:
    result = run("--from", "-", "--to", "-", stdin=SAMPLE.read_bytes())
    assert result.returncode == 0
    assert result.stdout == (DATA / "sample_stream.expected.jsonl").read_bytes()
    assert b'"error.class","UnknownFormat"' in result.stderr


def test_directory_of_bodies(tmp_path: Path) -> None:
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    for path in sorted((ROOT / "tests/golden").glob("*/*.body")):
        (bodies / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    (bodies / "zz-garbage.body").write_bytes(b"\xff\xfe not a body")
    out = tmp_path / "out.jsonl"
    result = run("--from", str(bodies), "--to", str(out))
    assert result.returncode == 0, result.stderr
    expected = sum(
        len(p.read_text().splitlines()) for p in (ROOT / "tests/golden").glob("*/*.expected.jsonl")
    )
    emitted = out.read_text().splitlines()
    # Golden bodies share some messages across formats; every line is a distinct identity.
    identities = {(e["provider"], e["message_key"], e["status"]) for e in map(json.loads, emitted)}
    assert len(identities) == len(emitted) <= expected
    assert len(emitted) > expected * 0.8
    dead = (tmp_path / "out.jsonl.deadletter.jsonl").read_text()
    assert "zz-garbage.body" in dead


def test_malformed_envelope_line_is_dead_lettered(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(SAMPLE.read_bytes().splitlines(keepends=True)[4] + b"{not json\n")
    out = tmp_path / "out.jsonl"
    result = run("--from", str(source), "--to", str(out))
    assert result.returncode == 0
    assert len(out.read_text().splitlines()) == 5
    assert "MalformedEnvelope" in (tmp_path / "out.jsonl.deadletter.jsonl").read_text()


def test_summary_counts_unmapped_statuses_and_unreadable_times() -> None:
    """Reports kept with an UNKNOWN status or a null time are counted where an operator looks."""
    body = [{"SessionNo": "s1", "Phone": "8618512345678", "ReceiptResult": "Weird",
             "ReceiptTime": "yesterday"}]  # fmt: skip
    line = {"topic": "raw", "partition": 0, "offset": 1, "ts": 1_700_000_000_000,
            "headers": ["provider", "uspeedo"], "key": None,
            "payload": json.dumps(body)}  # fmt: skip
    result = run("--from", "-", "--to", "-", stdin=json.dumps(line).encode() + b"\n")
    assert result.returncode == 0
    (event,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert (event["status"], event["occurred_at"], event["occurred_at_raw"]) == (
        "UNKNOWN",
        None,
        "yesterday",
    )
    summary = result.stderr.decode().splitlines()
    assert "  unmapped statuses (UNKNOWN): uspeedo=1" in summary
    assert "  unreadable times (kept raw): uspeedo=1" in summary


def _record(offset: int, provider: str, body: object, endpoint: str | None = None) -> bytes:
    headers = ["provider", provider] + (["endpoint", endpoint] if endpoint else [])
    line = {"topic": "raw", "partition": 0, "offset": offset, "ts": 1_700_000_000_000 + offset,
            "headers": headers, "key": None, "payload": json.dumps(body)}  # fmt: skip
    return json.dumps(line).encode() + b"\n"


def test_ultiroam_push_and_poll_written_differently_are_one_event() -> None:
    """The same SMS reported by push and by poll, its time written with a space and with a
    newline: one key, so one SENT event; the second is a duplicate."""
    report = {"port": 1, "number": "+8613800138000", "ref_id": 7, "status": "SENT_OK"}
    push = {"sn": "gw-1", "sms_result": [report | {"time": "2014-12-21 12:06:01"}]}
    poll = {"error_code": 200, "sn": "gw-1", "result": [report | {"time": "2014-12-21\n12:06:01"}]}
    stream = _record(1, "ultiroam", push) + _record(2, "ultiroam", poll)
    result = run("--from", "-", "--to", "-", stdin=stream)
    assert result.returncode == 0, result.stderr.decode()
    events = [json.loads(x) for x in result.stdout.splitlines()]
    assert [(e["status"], e["endpoint"]) for e in events] == [("SENT", "ultiroam.sms_result")]
    assert "1 events out, 1 duplicates" in result.stderr.decode()


def test_bodies_with_empty_identities_are_dead_letters_not_duplicates() -> None:
    """Two different reports whose identity is empty never share a made-up key: each body is a
    dead letter with its reason, and nothing is counted as a duplicate."""
    first = [{"SessionNo": "", "Phone": "8618512345678", "ReceiptResult": "Success"}]
    second = [{"SessionNo": "", "Phone": "8618512345679", "ReceiptResult": "Fail"}]
    stream = _record(1, "uspeedo", first) + _record(2, "uspeedo", second)
    result = run("--from", "-", "--to", "-", stdin=stream)
    assert result.stdout == b""
    err = result.stderr.decode()
    dead = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    headers = [dict(zip(d["headers"][::2], d["headers"][1::2], strict=True)) for d in dead]
    assert [h["source.offset"] for h in headers] == ["1", "2"]
    for h in headers:
        assert (h["error.class"], h["error.message"]) == ("MalformedBody", "SessionNo is empty")
    assert "0 duplicates" in err and "2 dead-lettered" in err


def test_state_records_beside_the_events(tmp_path: Path) -> None:
    """--state-to: one state record per emitted event, in order, keyed by the same message;
    the last one of each message holds every status it reached, in arrival order."""
    out, states = tmp_path / "events.jsonl", tmp_path / "states.jsonl"
    result = run("--from", str(SAMPLE), "--to", str(out), "--state-to", str(states))
    assert result.returncode == 0, result.stderr
    events = [json.loads(x) for x in out.read_text().splitlines()]
    records = [json.loads(x) for x in states.read_text().splitlines()]
    assert len(records) == len(events) == 48
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for event, record in zip(events, records, strict=True):
        assert (record["provider"], record["message_key"]) == (
            event["provider"],
            event["message_key"],
        )
        assert record["statuses"][-1]["event_id"] == event["event_id"]
        last[event["provider"], event["message_key"]] = record
    for (provider, key), record in last.items():
        mine = [e for e in events if (e["provider"], e["message_key"]) == (provider, key)]
        assert [s["status"] for s in record["statuses"]] == [e["status"] for e in mine]
        assert [s["event_id"] for s in record["statuses"]] == [e["event_id"] for e in mine]
    # Events only, same output as without the flag.
    assert out.read_bytes() == (DATA / "sample_stream.expected.jsonl").read_bytes()


def test_state_to_needs_from() -> None:
    result = run("--state-to", "x.jsonl")
    assert result.returncode == 2
    assert b"--state-to needs --from" in result.stderr

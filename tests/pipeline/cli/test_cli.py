"""The command line, run as users run it: `python -m pipeline ...` in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import msgspec
import pytest

from pipeline.cli import event_schema, state_schema

ROOT = Path(__file__).resolve().parents[3]


def pipeline(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )


def test_help_lists_the_subcommands() -> None:
    result = pipeline("--help")
    assert result.returncode == 0
    listed = re.findall(r"^    (\w+)\b", result.stdout.decode(), flags=re.M)
    assert listed == ["run", "ingress", "topics", "redrive", "normalise", "schema"]


def test_run_help_documents_every_option_with_its_default() -> None:
    text = pipeline("run", "--help").stdout.decode()
    for flag in (
        "--bootstrap-servers",
        "--from",
        "--to",
        "--window-max-messages",
        "--workers",
        "--metrics-port",
        "--time-zones",
        "--topic-map",
        "--config",
    ):
        assert flag in text
    assert text.count("(default:") >= 25


def test_schema_is_valid_json_schema_for_events() -> None:
    result = pipeline("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    event = json.loads(
        (ROOT / "tests/golden/yunpian/push.expected.jsonl").read_text().splitlines()[0]
    )
    jsonschema.validate(event, schema)
    event["status"] = "HAPPY"
    validator = jsonschema.Draft202012Validator(schema)
    assert not validator.is_valid(event)


def test_committed_schema_matches_the_struct() -> None:
    committed = (ROOT / "schemas/receipt_event.schema.json").read_bytes()
    assert committed == event_schema(), (
        "regenerate: python -m pipeline schema > schemas/receipt_event.schema.json"
    )


def test_committed_state_schema_matches_the_struct() -> None:
    committed = (ROOT / "schemas/message_state.schema.json").read_bytes()
    assert committed == state_schema(), (
        "regenerate: python -m pipeline schema --state > schemas/message_state.schema.json"
    )


def test_state_schema_validates_the_state_records_of_a_run(tmp_path: Path) -> None:
    result = pipeline("schema", "--state")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["title"] == "MessageState v1"
    jsonschema.Draft202012Validator.check_schema(schema)
    states = tmp_path / "states.jsonl"
    run = pipeline(
        "run",
        "--from",
        str(ROOT / "pipeline/sample/stream.jsonl"),
        "--to",
        str(tmp_path / "events.jsonl"),
        "--state-to",
        str(states),
    )
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in states.read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(schema)
    for record in records:
        validator.validate(record)
    records[0]["finality"] = "maybe"
    assert not validator.is_valid(records[0])


def test_normalise_prints_events(tmp_path: Path) -> None:
    body = ROOT / "tests/golden/yunpian/push.body"
    result = pipeline("normalise", "--provider", "yunpian", str(body))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = (ROOT / "tests/golden/yunpian/push.expected.jsonl").read_bytes().splitlines()
    assert len(lines) == len(expected)

    # Same events as the golden file apart from where they came from.
    def strip(raw: bytes) -> dict[str, object]:
        event = msgspec.json.decode(raw)
        return {k: v for k, v in event.items() if k not in ("source", "observed_at")}

    assert [strip(x) for x in lines] == [strip(x) for x in expected]


def test_normalise_bad_body_names_file_and_prints_nothing(tmp_path: Path) -> None:
    good = ROOT / "tests/golden/yunpian/push.body"
    bad = tmp_path / "truncated.body"
    bad.write_bytes(good.read_bytes()[:-40])
    result = pipeline("normalise", "--provider", "yunpian", str(bad))
    assert result.returncode == 1
    assert result.stdout == b""
    assert str(bad) in result.stderr.decode()
    assert "MalformedBody" in result.stderr.decode()


def test_normalise_partly_bad_body_prints_its_events_and_its_dead_letter(tmp_path: Path) -> None:
    body = tmp_path / "partial.body"
    body.write_bytes(
        b'sms_status=[{"sid":1,"mobile":"15205201314","report_status":"SUCCESS"},'
        b'{"sid":"","mobile":"15205201315","report_status":"SUCCESS"},'
        b'{"sid":3,"mobile":"15205201316","report_status":"FAIL"}]'
    )
    result = pipeline("normalise", "--provider", "yunpian", str(body))
    assert result.returncode == 1  # something was dead-lettered
    events = [msgspec.json.decode(line) for line in result.stdout.splitlines()]
    assert [(e["message_key"], e["source"]["index"]) for e in events] == [("1", 0), ("3", 2)]
    err = result.stderr.decode()
    assert f"{body}: PartialBody: 1 of 3 reports invalid: [1] sid is empty" in err


def test_bad_flag_value_names_it() -> None:
    result = pipeline("run", "--from", "-", "--window-max-messages", "zero", stdin=b"")
    assert result.returncode == 2
    assert "window_max_messages" in result.stderr.decode()


def test_bad_env_value_names_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--from", "-"],
        input=b"",
        capture_output=True,
        cwd=ROOT,
        env={"PIPELINE_WORKERS": "-3", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 2
    assert "PIPELINE_WORKERS" in result.stderr.decode()


def test_bad_time_zone_setting_names_it() -> None:
    result = pipeline("run", "--from", "-", "--time-zones", "yunpian=Mars/Olympus", stdin=b"")
    assert result.returncode == 2
    assert "time_zones" in result.stderr.decode() and "Mars/Olympus" in result.stderr.decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--bootstrap-servers", "localhost:90a2"],
            "error: invalid setting bootstrap_servers (from flag --bootstrap-servers): "
            "'localhost:90a2' is not host:port (e.g. 127.0.0.1:9092)",
        ),
        (
            ["--bootstrap-servers", "a:9092,b:70000"],
            "error: invalid setting bootstrap_servers (from flag --bootstrap-servers): "
            "'b:70000': port 70000 is not between 1 and 65535",
        ),
        (
            ["--topology", "ring"],
            "error: invalid setting topology (from flag --topology): Invalid enum value 'ring' "
            "- at `$.topology` (valid: partitioned, single)",
        ),
        (
            ["--to", "events.jsonl"],
            "error: --to needs --from (files in, files out); without --from, run reads and "
            "writes Kafka",
        ),
    ],
)
def test_a_mistake_is_one_line_naming_the_setting(args: list[str], message: str) -> None:
    """At once, before any wait for Kafka: exit 2 and one line on stderr, no traceback."""
    result = pipeline("run", "--startup-timeout-s", "1", *args)
    assert (result.returncode, result.stderr.decode().splitlines()) == (2, [message])

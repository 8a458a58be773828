"""`topics create`: its flags (against the real broker: tests/integration/test_topics_create.py)."""

from __future__ import annotations

import pytest

from pipeline.cli import parser
from pipeline.config import settings_from_args


def test_defaults_and_the_settings_of_run() -> None:
    args = parser().parse_args(
        ["topics", "create", "--output-topic", "out", "--input-topics", "a,b", "--input-topics=c"]
    )
    assert (args.partitions, args.replication_factor) == (6, 1)
    settings = settings_from_args(args, environ={"PIPELINE_DEAD_LETTER_TOPIC": "dlq"})
    assert settings.input_topics == ["a", "b", "c"]
    assert (settings.output_topic, settings.dead_letter_topic) == ("out", "dlq")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--partitions", "0"], "argument --partitions: must be at least 1, got 0"),
        (["--partitions", "six"], "argument --partitions: expected a whole number, got 'six'"),
        (["--replication-factor", "-1"], "argument --replication-factor: must be at least 1"),
        (["--replication-factor", "40000"], "argument --replication-factor: must be at most"),
        (["--group-id", "g"], "unrecognized arguments: --group-id g"),  # not a setting it uses
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["topics", "create", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_topics_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["topics"])
    assert exited.value.code == 2
    assert "create" in capsys.readouterr().err

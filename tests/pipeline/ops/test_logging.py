"""pipeline.ops._logging: JSON lines, aiokafka's whole logger tree rate-limited at its handler."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError, UnknownError

from pipeline.ops import JsonFormatter, RateLimit, configure_logging


def record(msg: str, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_repeats_are_held_back_and_counted() -> None:
    limit = RateLimit(every=60.0)
    assert limit.filter(record("Unable connect to node with id 1"))
    assert not any(limit.filter(record("Unable connect to node with id 1")) for _ in range(500))
    assert limit.filter(record("another message"))
    assert limit.filter(record("Unable connect to node with id 1", "aiokafka.conn"))  # its own
    limit.seen["aiokafka", "Unable connect to node with id 1"] = (-1e9, 500)  # period passed
    later = record("Unable connect to node with id 1")
    assert limit.filter(later)
    assert "500 more like it" in later.getMessage()


def test_memory_of_messages_is_bounded() -> None:
    limit = RateLimit(every=60.0)
    for i in range(5000):
        limit.filter(record(f"distinct {i}"))
    assert len(limit.seen) <= RateLimit.MAX_KEYS


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    saved = [
        (lg, lg.handlers[:], lg.level, lg.propagate)
        for lg in map(logging.getLogger, ("pipeline", "aiokafka", "asyncio"))
    ]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate


def test_child_loggers_rate_limited(
    capsys: pytest.CaptureFixture[str], restore_loggers: None
) -> None:
    """aiokafka.conn and aiokafka.consumer.group_coordinator are throttled too (a filter on
    the `aiokafka` logger itself never sees its children's records), and asyncio's JSON lines
    as well; ours are not."""
    configure_logging("INFO")
    for name in ("aiokafka", "aiokafka.conn", "aiokafka.consumer.group_coordinator"):
        for _ in range(300):
            logging.getLogger(name).error("Unable connect to node with id %s", 1)
    for _ in range(5):
        logging.getLogger("pipeline.kafka").warning("waiting for Kafka")
    for _ in range(300):  # e.g. a library's future nobody awaited, reported by the loop
        logging.getLogger("asyncio").error("Future exception was never retrieved")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    theirs = [d for d in lines if d["logger"].startswith("aiokafka")]
    assert sorted(d["logger"] for d in theirs) == [
        "aiokafka",
        "aiokafka.conn",
        "aiokafka.consumer.group_coordinator",
    ]
    assert sum(1 for d in lines if d["logger"] == "pipeline.kafka") == 5
    assert [d["logger"] for d in lines if d["logger"] == "asyncio"] == ["asyncio"]


def test_json_logging(capsys: pytest.CaptureFixture[str], restore_loggers: None) -> None:
    configure_logging("info")
    configure_logging("INFO")  # idempotent: one handler, not two
    log = logging.getLogger("pipeline.loop")
    log.debug("not shown")
    log.info("assigned %d partitions", 3, extra={"topic": "receipts", "partitions": [0, 1, 2]})
    try:
        raise RuntimeError("commit\nfailed")
    except RuntimeError:
        log.exception("commit failed", extra={"level": "clash", "obj": object()})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["level"] == "INFO" and first["logger"] == "pipeline.loop"
    assert first["msg"] == "assigned 3 partitions"
    assert first["topic"] == "receipts" and first["partitions"] == [0, 1, 2]
    assert second["level"] == "ERROR" and second["extra_level"] == "clash"
    assert "RuntimeError: commit\nfailed" in second["exc"]
    assert second["obj"].startswith("<object object")


def test_json_formatter_degrades_on_unencodable() -> None:
    rec = logging.LogRecord("pipeline", logging.WARNING, "f", 1, "big", None, None)
    rec.huge = 1 << 70
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["huge"] == str(1 << 70) and doc["level"] == "WARNING"


def test_unknown_level_rejected(restore_loggers: None) -> None:
    with pytest.raises(ValueError):
        configure_logging("LOUD")


def test_retried_conditions_are_info(
    capsys: pytest.CaptureFixture[str], restore_loggers: None
) -> None:
    """A first start's coordinator election is logged by aiokafka as an error it then retries:
    INFO; an error that is not retried stays an error."""
    configure_logging("INFO")
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    coordinator.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    coordinator.error("Attempt to join group failed due to fatal error: %s", UnknownError())
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(d["level"], d["msg"].split(":")[0]) for d in lines] == [
        ("INFO", "Group Coordinator Request failed"),
        ("ERROR", "Attempt to join group failed due to fatal error"),
    ]

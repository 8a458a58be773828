"""aiokafka's reconnect warnings are rate-limited, not dropped silently."""

from __future__ import annotations

import logging

from pipeline.kafka._logs import RateLimit


def record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, None, None)


def test_repeats_are_held_back_and_counted() -> None:
    limit = RateLimit(every=60.0)
    assert limit.filter(record("Unable connect to node with id 1"))
    assert not any(limit.filter(record("Unable connect to node with id 1")) for _ in range(500))
    assert limit.filter(record("another message"))
    limit.seen["Unable connect to node with id 1"] = (-1e9, 500)  # the period has passed
    later = record("Unable connect to node with id 1")
    assert limit.filter(later)
    assert "500 more like it" in later.getMessage()

"""aiokafka's logs while the broker is down: throttled across the whole `aiokafka.*` tree
(`aiokafka.conn`, `aiokafka.consumer.group_coordinator`, ...), and not silenced."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest

from tools.broker import LocalKafka

from .conftest import Spawn, make_topics, run_args

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]

#: How long the broker stays down; the rate limit lets each message through once per 10 s.
DOWN_S = 12.0


async def test_aiokafka_logs_throttled(own_broker: LocalKafka, spawn: Spawn) -> None:
    bootstrap = own_broker.bootstrap
    topics = await make_topics(bootstrap, "logs", raw=2, out=2, dlq=1)
    proc = spawn(run_args(bootstrap, topics))
    await proc.wait_log("partitions assigned", timeout=60)
    before = len(proc.logs)
    own_broker.stop()  # SIGTERM, waited for: the broker is gone from here on
    await asyncio.sleep(DOWN_S)
    assert proc.alive(), proc.text()[-3000:]
    theirs = [d for d in proc.logs[before:] if str(d.get("logger", "")).startswith("aiokafka")]
    by_logger = Counter(d["logger"] for d in theirs)
    print(f"aiokafka lines in {DOWN_S:.0f}s with the broker down: {dict(by_logger)}")
    children = [d for d in theirs if d["logger"] != "aiokafka"]
    # Not silenced: the child loggers (the group coordinator's, the fetcher's) report it ...
    assert {d["logger"] for d in children} & {
        "aiokafka.consumer.group_coordinator",
        "aiokafka.consumer.fetcher",
        "aiokafka.conn",
    }, by_logger
    # ... and held back their repeats (a filter on the `aiokafka` logger never sees them:
    # unthrottled, the fetcher alone writes a line per retry, a few hundred in 12 s).
    held = [re.search(r"\((\d+) more like it", d["msg"]) for d in children]
    assert any(h and int(h.group(1)) >= 10 for h in held), [d["msg"] for d in children]
    per_message = Counter((d["logger"], d["msg"].split(" (")[0]) for d in theirs)
    assert max(per_message.values()) <= 2, per_message.most_common(3)  # once per 10 s
    assert len(theirs) <= 40, by_logger
    proc.kill()

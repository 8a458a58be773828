"""A transaction that fails without the writer being fenced, under `--exactly-once`: the dedupe
stage rebuilds the partition (window dropped, consumer back at the committed offset, writer
reopened, window restored from the output) and carries on; every event reaches the output
once, and its state record with it.

The failure is real and of the broker's making: the output topic's `max.message.bytes` is
lowered under every batch the writer sends, so the broker refuses them. The processor is frozen
(SIGSTOP) as soon as it reports the failed transaction, the limit is restored, and it is woken:
its next transaction of that partition then succeeds, whichever attempt it is. Left lowered,
the third failure in a row stops the processor."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from .conftest import (
    Spawn,
    check_outputs,
    check_states,
    corpus_stream,
    drain,
    expected,
    produce,
    run_args,
    wait_processed,
    wait_ready,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]

#: The output topic's max.message.bytes while its transactions are to fail.
LIMIT = 200
FAILED = "transaction failed; partition rebuilt from the output"


async def set_max_message_bytes(bootstrap: str, topic: str, value: str | None) -> None:
    """The topic's `max.message.bytes` set (None: back to the broker's default); returns once
    the broker describes it so (a single broker: then it also enforces it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {} if value is None else {"max.message.bytes": value}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
        deadline = time.monotonic() + 10
        while True:
            (response,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})]
            )
            entry = {c[0]: c for c in response.resources[0][4]}["max.message.bytes"]
            # (name, value, read_only, source, ...): source 1 is a topic override.
            if (entry[1] == value) if value is not None else (entry[3] != 1):
                return
            assert time.monotonic() < deadline, entry
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def test_a_failed_transaction_rebuilds_its_partition(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    """Two fifths of the stream commit; the limit is lowered and two fifths more come: a
    transaction fails and its partition is rebuilt, the limit is restored, and everything so
    far is in the output once. Then the limit is lowered for good and the last fifth comes: after
    three failures in a row the processor stops (exit 1) naming the partition and the error."""
    topics, records, _ = await corpus_stream(
        kafka_bootstrap, "eos-rebuild", 61, 1500, raw=2, out=2, dlq=1
    )
    first, second = len(records) * 2 // 5, len(records) * 4 // 5
    want = expected(records[:second])
    # Under any batch of events, not under the transaction markers (about 80 bytes): the
    # broker must still write the abort.
    assert min(len(o.value) for o in want.outputs) > LIMIT
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--exactly-once"]))
    await wait_ready(proc)
    await produce(kafka_bootstrap, records[:first])
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    # The windows hold the first part now: the rebuild must restore them from the output.
    await set_max_message_bytes(kafka_bootstrap, topics.out, str(LIMIT))
    await produce(kafka_bootstrap, records[first:second])
    failed = await proc.wait_log(FAILED)
    proc.signal(signal.SIGSTOP)
    try:
        await set_max_message_bytes(kafka_bootstrap, topics.out, None)
    finally:
        proc.signal(signal.SIGCONT)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    out = await drain(kafka_bootstrap, topics.out, isolation_level="read_committed")
    check_outputs(out, want.outputs, 2)
    states = await drain(
        kafka_bootstrap, f"{topics.out}.messages", isolation_level="read_committed"
    )
    assert check_states(out, states) > 100 and len(states) == len(out)
    warnings = proc.messages(FAILED)
    # One, or two if another attempt failed before the processor was frozen: never three.
    assert 1 <= len(warnings) <= 2
    assert "MessageSizeTooLarge" in failed["error"]
    p = failed["partition"]
    restores = [d for d in proc.messages("window restored") if d["partition"] == p]
    assert len(restores) >= 2 and restores[-1]["records"] > 0  # at start, then from the output
    assert proc.alive() and not proc.crashes(), proc.text()[-3000:]

    await set_max_message_bytes(kafka_bootstrap, topics.out, str(LIMIT))
    await produce(kafka_bootstrap, records[second:])
    assert await proc.wait(30) == 1, proc.text()[-3000:]
    assert len(proc.messages(FAILED)) >= len(warnings) + 2
    assert re.search(
        r"error: dedupe: 3 transactions of output partition \d failed in a row, the last with "
        r"MessageSizeTooLargeError",
        proc.text(),
    ), proc.text()[-3000:]

"""Graceful shutdown (SIGTERM, SIGINT) and rebalances: what is emitted is committed, what is
committed is never read again, and nothing is lost or duplicated."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from .conftest import (
    Proc,
    RestartableKafka,
    Spawn,
    check_outputs,
    check_replayed_dead_letters,
    committed,
    corpus_stream,
    drain,
    end_offsets,
    produce,
    run_args,
    wait_outputs,
    wait_processed,
    wait_ready,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_graceful_stop_commits_what_it_emitted(
    kafka_bootstrap: str, spawn: Spawn, signum: signal.Signals
) -> None:
    topics, records, want = await corpus_stream(kafka_bootstrap, "shutdown", 61, 40_000)
    await produce(kafka_bootstrap, records)
    # One stage, so that "committed" and "emitted" are about the same group (under
    # `partitioned` the dedupe stage's hand-over is what test_rebalance_commits_what_is_done and
    # test_topology.py check).
    args = run_args(
        kafka_bootstrap, topics, extra=["--batch-max-records", "100", "--topology", "single"]
    )

    # 1. A signal in the middle of the stream: the batch in hand is finished and committed,
    #    and the process exits 0 within seconds.
    proc = spawn(args)
    await wait_outputs(kafka_bootstrap, topics.out, len(want.outputs) // 3, [proc])
    sent = time.monotonic()
    proc.signal(signum)
    assert await proc.wait(5) == 0, proc.text()[-3000:]
    assert time.monotonic() - sent < 5
    assert proc.messages("stopping")[0]["signal"] == signum.name
    assert proc.crashes() == []
    done = await committed(kafka_bootstrap, topics.group, topics.raw)
    ends = await end_offsets(kafka_bootstrap, topics.raw)
    assert sum(done.values()) < sum(ends.values()), "the stream ended before the signal"
    # Exactly the events of the committed records are out: nothing emitted and left
    # uncommitted (it would be read again), nothing committed and not emitted (lost).
    out = await drain(kafka_bootstrap, topics.out)
    below = [
        o
        for o in want.outputs
        if (src := json.loads(o.value)["source"])["offset"] < done.get(src["partition"], 0)
    ]
    check_outputs(out, below, 6)

    # 2. The next run takes over from the committed offsets and runs to the end; a clean stop
    #    then leaves the group's offsets at the end of every partition.
    proc = spawn(args)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    assert await proc.stop() == 0
    assert await committed(kafka_bootstrap, topics.group, topics.raw) == ends
    out = await drain(kafka_bootstrap, topics.out)
    check_outputs(out, want.outputs, 6)
    check_replayed_dead_letters(await drain(kafka_bootstrap, topics.dlq), want.dead_letters)

    # 3. A restart re-reads nothing: it joins, waits through several fetches, and processes no
    #    batch; the output topic does not grow.
    outputs_before = await end_offsets(kafka_bootstrap, topics.out)
    proc = spawn(args)
    await proc.wait_log("partitions assigned", timeout=30)
    await asyncio.sleep(1.0)  # twenty fetch cycles of --fetch-max-wait-ms 50
    assert await proc.stop() == 0
    assert proc.messages("stopped")[0]["batches"] == 0
    assert await end_offsets(kafka_bootstrap, topics.out) == outputs_before
    assert sum(outputs_before.values()) == len(want.outputs)
    assert await committed(kafka_bootstrap, topics.group, topics.raw) == ends


async def test_rebalance_commits_what_is_done(kafka_bootstrap: str, spawn: Spawn) -> None:
    """A second instance joins in the middle of a live stream, takes half the partitions, and
    leaves again: every event exactly once, every dead letter there."""
    topics, records, want = await corpus_stream(kafka_bootstrap, "rebalance", 63, 40_000)
    args = run_args(kafka_bootstrap, topics, extra=["--batch-max-records", "100"])
    a = spawn(args)
    await a.wait_log("partitions assigned", timeout=30)
    # The stream is live through both changes of the group, whatever the host's speed: a part
    # arrives while b joins, a part once b works, and the rest after b has left.
    quarter = len(records) // 4
    joining, member, after = (
        records[: 2 * quarter],
        records[2 * quarter : 3 * quarter],
        records[3 * quarter :],
    )
    feed = asyncio.create_task(produce(kafka_bootstrap, joining, spread_s=5.0))
    try:
        await wait_outputs(kafka_bootstrap, topics.out, 1, [a])
        b = spawn(args)

        def b_owns() -> bool:
            lines = b.messages("partitions assigned")
            return bool(lines and lines[-1]["partitions"])

        await b.wait_log(lambda d: b_owns(), timeout=30)
        revoked = len(a.messages("partitions revoked"))
        assert revoked >= 2  # once at start (nothing), once for b's arrival
        await wait_ready(b)
        await feed
        await produce(kafka_bootstrap, member, spread_s=2.0)
        done_b = await wait_outputs(kafka_bootstrap, topics.out, 0, [b])
        await asyncio.sleep(1.0)  # b works on its partitions for a while
        assert await b.stop() == 0
        assert b.messages("stopped")[0]["batches"] > 0
        assert done_b < len(want.outputs)
    finally:
        if not feed.done():
            feed.cancel()
    await produce(kafka_bootstrap, after, spread_s=2.0)
    await wait_processed(kafka_bootstrap, topics, procs=[a])
    out = await drain(kafka_bootstrap, topics.out)
    check_outputs(out, want.outputs, 6)
    check_replayed_dead_letters(await drain(kafka_bootstrap, topics.dlq), want.dead_letters)
    # a took the partitions back after b left (a third assignment), and never crashed.
    assert len(a.messages("partitions assigned")) >= 3
    assert a.crashes() == [] and b.crashes() == []
    assert await a.stop() == 0


#: --shutdown-timeout-s of the broker-gone tests, and what the exit may take beyond it (the
#: clients' sockets are closed after it; a loaded machine is slow).
BOUND_S, MARGIN_S = 5, 10


def clean_stderr(proc: Proc) -> None:
    """No traceback, no unclosed client, no cancellation escaped on the way out."""
    raw = [d["raw"] for d in proc.logs if "raw" in d]
    text = proc.text()
    for bad in ("Traceback", "Unclosed", "CancelledError", "Task was destroyed"):
        assert bad not in text, (bad, raw[-40:])


async def stop_without_broker(proc: Proc, own_broker: RestartableKafka) -> tuple[int, float]:
    own_broker.down()  # blocking on purpose: nothing here runs while the broker goes
    sent = time.monotonic()
    proc.signal(signal.SIGTERM)
    code = await proc.wait(BOUND_S + MARGIN_S)
    return code, time.monotonic() - sent


@pytest.mark.parametrize("topology", ["single", "partitioned"])
async def test_stop_with_broker_gone_and_nothing_in_hand(
    own_broker: RestartableKafka, spawn: Spawn, topology: str
) -> None:
    """Everything read is committed, then the broker goes: the stop is bounded, exits 0, and
    closes every client quietly."""
    bootstrap = own_broker.bootstrap
    topics, records, _ = await corpus_stream(bootstrap, "gone-idle", 71, 500, raw=2, out=2, dlq=1)
    await produce(bootstrap, records)
    extra = ["--topology", topology, "--shutdown-timeout-s", str(BOUND_S)]
    proc = spawn(run_args(bootstrap, topics, extra=extra))
    await wait_processed(bootstrap, topics, procs=[proc])
    code, took = await stop_without_broker(proc, own_broker)
    assert code == 0, proc.text()[-3000:]
    assert took < BOUND_S + MARGIN_S
    assert proc.messages("stopped") and not proc.messages("stop gave up, work left uncommitted")
    clean_stderr(proc)


@pytest.mark.parametrize("topology", ["single", "partitioned"])
async def test_stop_with_broker_gone_and_a_batch_in_hand(
    own_broker: RestartableKafka, spawn: Spawn, topology: str
) -> None:
    """The broker goes in the middle of a stream: the stop gives up on the batch in hand
    within the bound (exit 3, said in a log line), and a new processor, once the broker is
    back, emits every event exactly once."""
    bootstrap = own_broker.bootstrap
    topics, records, want = await corpus_stream(bootstrap, "gone-busy", 73, 40_000)
    await produce(bootstrap, records)
    extra = [
        "--topology",
        topology,
        "--shutdown-timeout-s",
        str(BOUND_S),
        "--batch-max-records",
        "50",
    ]
    args = run_args(bootstrap, topics, extra=extra)
    proc = spawn(args)
    await wait_outputs(bootstrap, topics.out, len(want.outputs) // 10, [proc])
    code, took = await stop_without_broker(proc, own_broker)
    assert code == 3, proc.text()[-3000:]
    assert took < BOUND_S + MARGIN_S
    gave_up = proc.messages("stop gave up, work left uncommitted")
    assert gave_up and gave_up[0]["exit_code"] == 3, proc.text()[-3000:]
    clean_stderr(proc)

    own_broker.up()
    proc = spawn(args)
    await wait_processed(bootstrap, topics, procs=[proc], timeout=120)
    assert await proc.stop() == 0
    check_outputs(await drain(bootstrap, topics.out), want.outputs, 6)
    check_replayed_dead_letters(await drain(bootstrap, topics.dlq), want.dead_letters)

"""The state topic `<output>.messages` against the real broker: created compacted at start,
written with the events that changed each message, in both topologies, with two instances and a
rebalance mid-stream, and with --exactly-once; a wrong existing topic stops start-up; time-outs
fire once across restores, also under `single` once its output topic outgrew the state topic."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord

from pipeline.core import InputRecord
from pipeline.core.normalise import format_epoch_ms

from .conftest import (
    Proc,
    Spawn,
    Stream,
    Topics,
    add_partitions,
    check_outputs,
    check_states,
    corpus_stream,
    create_topics,
    drain,
    parse_metrics,
    produce,
    run_args,
    scrape,
    wait_processed,
    wait_ready,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
        return {c[0]: c[1] for c in response.resources[0][4]}
    finally:
        await admin.close()


async def run_stream(
    bootstrap: str, spawn: Spawn, stream: Stream, extra: Sequence[str], *, second: bool = False
) -> tuple[list[ConsumerRecord], list[ConsumerRecord]]:
    """Half the stream to one instance; with `second`, a second instance joins (a rebalance)
    before the other half. Returns (output, state) records once everything is committed."""
    topics, records, want = stream
    first = spawn(run_args(bootstrap, topics, extra=extra))
    half = len(records) // 2
    await produce(bootstrap, records[:half])
    procs = [first]
    if second:
        await wait_processed(bootstrap, topics, procs=procs, timeout=90)
        procs.append(spawn(run_args(bootstrap, topics, extra=extra)))
        # The newcomer holds its partitions, their windows restored from the output (and the
        # messages' lifecycle data from the events), before the second half comes.
        await wait_ready(procs[1], timeout=60)
    await produce(bootstrap, records[half:])
    await wait_processed(bootstrap, topics, procs=procs, timeout=90)
    isolation = "read_committed" if "--exactly-once" in extra else "read_uncommitted"
    out = await drain(bootstrap, topics.out, isolation_level=isolation)
    states = await drain(bootstrap, f"{topics.out}.messages", isolation_level=isolation)
    check_outputs(out, want.outputs, topics.partitions[topics.out])
    for proc in procs:
        assert not proc.crashes(), proc.text()[-3000:]
    return out, states


async def test_partitioned_two_instances_and_a_rebalance(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    stream = await corpus_stream(kafka_bootstrap, "state2", 31, 3000, raw=4, out=4)
    out, states = await run_stream(kafka_bootstrap, spawn, stream, [], second=True)
    assert check_states(out, states) > 500
    assert len(states) == len(out)  # one state record per emitted event, no more
    config = await topic_config(kafka_bootstrap, f"{stream.topics.out}.messages")
    assert config["cleanup.policy"] == "compact"


async def test_single_topology(kafka_bootstrap: str, spawn: Spawn) -> None:
    stream = await corpus_stream(kafka_bootstrap, "state1", 32, 1500, raw=2, out=4)
    out, states = await run_stream(kafka_bootstrap, spawn, stream, ["--topology", "single"])
    assert check_states(out, states) > 200 and len(states) == len(out)


async def test_exactly_once(kafka_bootstrap: str, spawn: Spawn) -> None:
    stream = await corpus_stream(kafka_bootstrap, "state-eos", 33, 1500, raw=2, out=4)
    out, states = await run_stream(kafka_bootstrap, spawn, stream, ["--exactly-once"])
    assert check_states(out, states) > 200 and len(states) == len(out)


async def test_a_wrong_state_topic_stops_start_up(kafka_bootstrap: str, spawn: Spawn) -> None:
    topics = Topics("state-bad", raw=1, out=2, dlq=1)
    await create_topics(kafka_bootstrap, topics.partitions)
    await create_topics(kafka_bootstrap, {f"{topics.out}.messages": 2})  # cleanup.policy=delete
    proc = spawn(run_args(kafka_bootstrap, topics))
    assert await proc.wait(30) == 2, proc.text()[-3000:]
    assert f"state topic '{topics.out}.messages' (--state-topic) has cleanup.policy=delete" in (
        proc.text()
    )
    named = f"{topics.out}.states"
    await create_topics(kafka_bootstrap, {named: 3}, {"cleanup.policy": "compact"})
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--state-topic", named]))
    assert await proc.wait(30) == 2, proc.text()[-3000:]
    assert f"state topic '{named}' (--state-topic) has 3 partitions" in proc.text()
    # --no-state: no state topic is looked at, the processor starts.
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--no-state"]))
    await wait_ready(proc)
    assert await proc.stop() == 0


async def timed_out_states(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    states = [json.loads(m.value) for m in await drain(bootstrap, f"{topic}.messages")]
    return [s for s in states if s["timed_out"]]


def unknown_reports(raw: str, offset: int, stamp: int, sids: Sequence[str]) -> InputRecord:
    """One push of Yunpian reports, UNKNOWN (not final) for each of `sids`, at raw partition
    0's `offset` and record time `stamp`."""
    reports = [
        {
            "sid": sid,
            "uid": "u",
            "user_receive_time": "2024-06-04 15:00:00",
            "error_msg": "",
            "error_detail": "",
            "mobile": "13711112222",
            "report_status": "UNKNOWN",
        }
        for sid in sids
    ]
    body = b"sms_status=" + json.dumps(reports).encode()
    return InputRecord(
        raw, 0, offset, stamp, [("provider", b"yunpian"), ("endpoint", b"push")], body
    )


def tencent_submit(raw: str, offset: int, stamp: int, serial: str) -> InputRecord:
    """A Tencent SendSms result: message `serial` submitted (PENDING, not final)."""
    body = json.dumps(
        {
            "Response": {
                "SendStatusSet": [
                    {
                        "SerialNo": serial,
                        "PhoneNumber": "+8613711112222",
                        "Fee": 1,
                        "SessionContext": "",
                        "Code": "Ok",
                        "Message": "send success",
                        "IsoCode": "CN",
                    }
                ],
                "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279",
            }
        }
    ).encode()
    return InputRecord(
        raw, 0, offset, stamp, [("provider", b"tencent"), ("endpoint", b"SendSms")], body
    )


async def fired_count(bootstrap: str, topic: str) -> Counter[str]:
    """Time-out records by provider:message_key."""
    states = await timed_out_states(bootstrap, topic)
    return Counter(f"{s['provider']}:{s['message_key']}" for s in states)


async def wait_fired(bootstrap: str, topic: str, keys: set[str], proc: Proc) -> Counter[str]:
    """Until each of `keys` (provider:message_key) has timed out."""
    deadline = time.monotonic() + 45
    while True:
        fired = await fired_count(bootstrap, topic)
        if keys <= set(fired):
            return fired
        assert time.monotonic() < deadline, proc.text()[-3000:]
        await asyncio.sleep(0.5)


async def test_timeouts_fire_once_across_kill9_snapshot_and_output_restores(
    kafka_bootstrap: str, spawn: Spawn, tmp_path: Path
) -> None:
    """Time-outs fire once each, also those fired by the idle (wall-clock) rule while stream
    time is short of their deadlines. Five messages, none gets a final: four (yunpian, 3 s)
    time out by the idle rule after the snapshot of both windows; the instance is killed (-9)
    before the fifth (tencent, 10 s) times out. One snapshot is deleted: the next instance
    resumes partition 0 from its snapshot and rebuilds partition 1 from the output alone; with
    no more traffic it times out the fifth by the idle rule, and not the four again."""
    topics = Topics("state-timeout", raw=1, out=2, dlq=1)
    await create_topics(kafka_bootstrap, topics.partitions)
    now = int(time.time() * 1000)
    sids = ["880001", "880002", "880003", "880004"]
    extra = [
        *("--final-timeout-s", "3", "--final-timeouts", "tencent=10"),
        *("--snapshot-interval-s", "1", "--state-dir", str(tmp_path)),
    ]
    first = spawn(run_args(kafka_bootstrap, topics, extra=extra))
    await wait_ready(first)
    await asyncio.sleep(1)  # so the batch is snapshotted (--snapshot-interval-s 1)
    await produce(
        kafka_bootstrap,
        [
            unknown_reports(topics.raw, 0, now, sids),
            tencent_submit(topics.raw, 1, now, "2433:3309419081247836212"),
        ],
    )
    await wait_processed(kafka_bootstrap, topics, procs=[first])
    out = await drain(kafka_bootstrap, topics.out)
    partition_of = {m.key.decode(): m.partition for m in out}
    (tencent,) = [k for k in partition_of if k.startswith("tencent:")]
    idle = {f"yunpian:{sid}" for sid in sids}
    assert {partition_of[k] for k in idle} == {0, 1}  # both restores have time-outs to find
    await first.wait_log("window snapshotted")
    fired = await wait_fired(kafka_bootstrap, topics.out, idle, first)
    first.kill()
    assert fired == dict.fromkeys(idle, 1), fired  # the tencent message waits on
    # The rule: quiet for 10 s, the window follows the wall clock less 10 s.
    assert time.time() * 1000 >= (now // 1000) * 1000 + 3000 + 10_000  # deadlines in s
    (snapshot,) = tmp_path.glob("*+1.snapshot")
    snapshot.unlink()
    second = spawn(run_args(kafka_bootstrap, topics, extra=extra))
    await wait_fired(kafka_bootstrap, topics.out, {tencent}, second)
    await asyncio.sleep(1.5)  # any second firing comes at the same tick or the next (1 s)
    fired = await fired_count(kafka_bootstrap, topics.out)
    assert fired == dict.fromkeys([*idle, tencent], 1), fired
    restores = [d for d in second.logs if d.get("msg") == "window restored"]
    assert {(d["partition"], d["snapshot"]) for d in restores} == {(0, True), (1, False)}
    assert sum(d["fired_before"] for d in restores) == len(idle), restores
    for state in await timed_out_states(kafka_bootstrap, topics.out):
        timeout = 10_000 if state["provider"] == "tencent" else 3000
        assert state["status"] in ("UNKNOWN", "PENDING") and state["final_at"] is None
        assert state["updated_at"] == format_epoch_ms((now // 1000) * 1000 + timeout)
    _, text = scrape(await second.metrics_port())
    metrics = parse_metrics(text)
    counted = {k: v for k, v in metrics["pipeline_timeouts_total"].items() if v}
    assert counted == {(("provider", "tencent"),): 1}
    assert sum(metrics.get("pipeline_finals_total", {}).values()) == 0
    assert await second.stop() == 0
    assert not second.crashes(), second.text()[-3000:]


async def read_table(bootstrap: str, topic: str) -> dict[bytes, dict[str, Any]]:
    """docs/operations.md's reader of the state topic as a table, as written there."""
    # No group: every partition of the topic is assigned, read from the start.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        table: dict[bytes, dict[str, Any]] = {}
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    state = json.loads(r.value)
                    if r.key not in table or state["version"] > table[r.key]["version"]:
                        table[r.key] = state
        return table
    finally:
        await consumer.stop()


async def test_the_topic_compacts_to_each_message_current_state(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    """With small segments the broker compacts the state topic to one record per message, and
    that record is the message's current state: read as a table, every message's status."""
    stream = await corpus_stream(kafka_bootstrap, "state-compact", 34, 600, raw=1, out=2)
    topics = stream.topics
    states_topic = f"{topics.out}.messages"
    compacting = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    }
    await create_topics(kafka_bootstrap, {states_topic: 2}, compacting)
    out, states = await run_stream(kafka_bootstrap, spawn, stream, [])
    messages = check_states(out, states)
    table = await read_table(kafka_bootstrap, states_topic)
    assert len(table) == messages
    deadline = time.monotonic() + 60
    while True:
        # A record more to each partition rolls the segments the broker may then clean.
        await produce_raw(kafka_bootstrap, states_topic, [b"roll:0", b"roll:1"])
        kept = await drain(kafka_bootstrap, states_topic)
        keys = [m.key for m in kept if not m.key.startswith(b"roll:")]
        if len(keys) == len(set(keys)):
            break
        assert time.monotonic() < deadline, f"{len(keys)} records, {len(set(keys))} keys"
        await asyncio.sleep(2)
    assert set(keys) == set(table)
    newest = {m.key: json.loads(m.value) for m in kept if m.key in table}
    assert newest == table
    by_key: dict[bytes, str] = {}
    for m in sorted(out, key=lambda m: (m.partition, m.offset)):
        by_key[m.key] = json.loads(m.value)["status"]
    assert {k: v["statuses"][-1]["status"] for k, v in newest.items()} == by_key


async def produce_raw(bootstrap: str, topic: str, keys: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for p, key in enumerate(keys):
            await producer.send_and_wait(topic, b"{}", key=key, partition=p)
    finally:
        await producer.stop()


async def test_single_reads_time_outs_back_after_the_output_grew(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    """Topology `single`, its output topic grown from 2 to 4 partitions while it runs (the state
    topic left at 2, as it may be until the operator follows): messages time out by record time
    (a later duplicate moves the window's clock; the output holds nothing that late), then a
    rebalance (the raw topic grows) rebuilds the window from all four output partitions. Each
    time-out that fired is read back from the state topic: none fires again when the clock moves
    on, and the restore neither waits for nor warns about state partitions that do not exist."""
    topics = Topics("state-grown", raw=1, out=2, dlq=1)
    await create_topics(kafka_bootstrap, topics.partitions)
    extra = ["--topology", "single", "--final-timeout-s", "3"]
    proc = spawn(run_args(kafka_bootstrap, topics, extra=extra))
    await wait_ready(proc)
    await add_partitions(kafka_bootstrap, topics.out, 4)
    await asyncio.sleep(2.5)  # the processor's metadata is refreshed every 2 s
    # Output partitions 1, 0, 1, 3, 1, 0, 2, 0 of 4; state partitions by the state topic's 2.
    sids = [str(880100 + i) for i in range(8)]
    stamp = (int(time.time()) - 60) * 1000
    await produce(kafka_bootstrap, [unknown_reports(topics.raw, 0, stamp, sids)])
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    # A duplicate 5 s later: no output, but the window's clock passes every deadline.
    await produce(kafka_bootstrap, [unknown_reports(topics.raw, 1, stamp + 5000, sids[:1])])
    keys = {f"yunpian:{sid}" for sid in sids}
    assert await wait_fired(kafka_bootstrap, topics.out, keys, proc) == dict.fromkeys(keys, 1)
    out = await drain(kafka_bootstrap, topics.out)
    assert {m.partition for m in out} == {0, 1, 2, 3}
    partition_of = {m.key: m.partition for m in out}
    states = await drain(kafka_bootstrap, f"{topics.out}.messages")
    assert any(m.partition != partition_of[m.key] for m in states)  # apart: the case at hand
    restored = len(proc.messages("window restored"))
    await add_partitions(kafka_bootstrap, topics.raw, 2)  # a rebalance: the window rebuilt
    # Within seconds: a state partition that does not exist is not waited for (40 s each).
    deadline = time.monotonic() + 20
    while len(proc.messages("window restored")) < restored + 4:
        assert proc.alive() and time.monotonic() < deadline, proc.text()[-4000:]
        await asyncio.sleep(0.1)
    restores = proc.messages("window restored")[restored:]
    assert [d["partition"] for d in restores] == [0, 1, 2, 3]
    # Both state partitions read back once the window holds all four output partitions.
    assert [d["fired_before"] for d in restores] == [0, 0, 0, len(keys)], restores
    assert restores[-1]["state_records"] == len(keys)  # from the earliest deadline on
    assert not proc.messages("state topic not read back"), proc.text()[-3000:]
    await wait_ready(proc)
    # The clock moves on past every deadline: nothing read back fires again.
    await produce(kafka_bootstrap, [unknown_reports(topics.raw, 2, stamp + 6000, sids[:1])])
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    fired = await fired_count(kafka_bootstrap, topics.out)
    assert fired == dict.fromkeys(keys, 1), fired
    assert await proc.stop() == 0
    assert not proc.crashes(), proc.text()[-3000:]

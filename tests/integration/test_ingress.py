"""The webhook ingress against the real broker, served by the real command on loopback, spoken
to by a real HTTP client: each body lands byte for byte, and only then is it answered."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import (
    RestartableKafka,
    Spawn,
    drain,
    make_topics,
    parse_metrics,
    run_args,
    scrape,
    wait_processed,
)
from .ingress_helpers import (
    FORM,
    JSON,
    TENCENT_CALLBACK,
    ULTIROAM_PUSH,
    USPEEDO_POLL,
    USPEEDO_PUSH,
    ingress_args,
    start_ingress,
    yunpian_body,
    yunpian_push,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


#: (path, body, content-type, the exact success answer)
PUSHES = [
    ("/v1/yunpian/push", yunpian_body(), FORM, b"SUCCESS"),
    ("/v1/tencent/callback", TENCENT_CALLBACK, JSON, b'{"result":0,"errmsg":"OK"}'),
    ("/v1/uspeedo/push", USPEEDO_PUSH, JSON, b""),
    ("/v1/ultiroam/push", ULTIROAM_PUSH, JSON, b""),
    ("/v1/uspeedo/GetUSMSSendReceipt", USPEEDO_POLL, JSON, b"{}"),
]


async def test_each_push_answered_and_stored_byte_for_byte(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "ingress-push", raw=2)
    proc, url = await start_ingress(spawn, kafka_bootstrap, topics.raw)
    before = int(time.time() * 1000)
    async with httpx.AsyncClient(base_url=url) as client:
        for path, body, ctype, success in PUSHES:
            response = await client.post(
                path,
                content=body,
                headers={"content-type": ctype.decode()},
                params={"account": "acct-7"},
            )
            assert (response.status_code, response.content) == (200, success), path
        # No account, no content type: those headers are absent, not empty.
        bare = await client.post("/v1/tencent/PullSmsSendStatus", content=b'{"Response":{}}')
        assert (bare.status_code, bare.content) == (200, b"{}")
    after = int(time.time() * 1000)
    records = await drain(kafka_bootstrap, topics.raw, count=len(PUSHES) + 1)
    by_value = {r.value: r for r in records}
    assert len(records) == len(by_value) == len(PUSHES) + 1
    for path, body, ctype, _ in PUSHES:
        record = by_value[body]
        provider, endpoint = path.split("/")[2:]
        assert list(record.headers) == [
            ("provider", provider.encode()),
            ("endpoint", endpoint.encode()),
            ("account", b"acct-7"),
            ("content-type", ctype),
        ]
        assert before <= record.timestamp <= after
        assert record.key is None
    assert list(by_value[b'{"Response":{}}'].headers) == [
        ("provider", b"tencent"),
        ("endpoint", b"PullSmsSendStatus"),
    ]
    port = int(url.rsplit(":", 1)[1])
    status, text = scrape(port)
    assert status == 200
    metrics = parse_metrics(text)
    accepted = metrics["ingress_requests_total"]
    key = (("endpoint", "push"), ("outcome", "accepted"), ("provider", "yunpian"))
    assert accepted[key] == 1
    assert scrape(port, "/livez")[0] == 200
    assert scrape(port, "/readyz")[0] == 200
    assert await proc.stop() == 0


async def test_unknown_paths_and_oversized_bodies_write_nothing(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "ingress-404", raw=1)
    proc, url = await start_ingress(
        spawn, kafka_bootstrap, topics.raw, "--max-request-bytes", "1000"
    )
    async with httpx.AsyncClient(base_url=url) as client:
        for path in ("/v1/nope/push", "/v1/yunpian/nope", "/v1/yunpian", "/", "/v1/yunpian/push/x"):
            assert (await client.post(path, content=b"x")).status_code == 404, path
        assert (await client.get("/v1/yunpian/push")).status_code == 405
        assert (await client.post("/v1/yunpian/push", content=b"x" * 1001)).status_code == 413

        # No Content-Length: the limit holds while reading.
        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(11):
                yield b"y" * 100

        assert (await client.post("/v1/yunpian/push", content=chunked())).status_code == 413
        last = await client.post("/v1/yunpian/push", content=b"z" * 1000)
        assert last.status_code == 200
    records = await drain(kafka_bootstrap, topics.raw, idle_s=1.0)
    assert [r.value for r in records] == [b"z" * 1000]
    assert await proc.stop() == 0


async def test_token_and_allow_list(kafka_bootstrap: str, spawn: Spawn) -> None:
    topics = await make_topics(kafka_bootstrap, "ingress-auth", raw=1)
    proc, url = await start_ingress(
        spawn, kafka_bootstrap, topics.raw, "--tokens", "yunpian=s3cret"
    )
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/v1/yunpian/push", content=b"a")).status_code == 401
        wrong = await client.post("/v1/yunpian/push", content=b"b", params={"token": "nope"})
        assert wrong.status_code == 401
        ok = await client.post("/v1/yunpian/push", content=b"c", params={"token": "s3cret"})
        assert ok.status_code == 200
        by_header = await client.post(
            "/v1/yunpian/push", content=b"d", headers={"x-ingress-token": "s3cret"}
        )
        assert by_header.status_code == 200
        # Other providers have no token configured.
        assert (await client.post("/v1/tencent/callback", content=b"[]")).status_code == 200
    await proc.stop()
    proc2, url2 = await start_ingress(
        spawn, kafka_bootstrap, topics.raw, "--allow-ips", "10.0.0.0/8"
    )
    async with httpx.AsyncClient(base_url=url2) as client:
        assert (await client.post("/v1/yunpian/push", content=b"e")).status_code == 403
    records = await drain(kafka_bootstrap, topics.raw, idle_s=1.0)
    assert sorted(r.value for r in records) == [b"[]", b"c", b"d"]
    assert await proc2.stop() == 0


async def test_broker_down_503_then_retry_succeeds_and_processor_emits_once(
    own_broker: RestartableKafka, spawn: Spawn
) -> None:
    bootstrap = own_broker.bootstrap
    topics = await make_topics(bootstrap, "ingress-down", raw=2, out=3, dlq=1)
    proc, url = await start_ingress(
        spawn, bootstrap, topics.raw, "--ack-timeout-s", "1.5", "--retry-after-s", "7"
    )
    bodies = [yunpian_push(10_000 + i) for i in range(20)]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        first = await client.post("/v1/yunpian/push", content=bodies[0])
        assert (first.status_code, first.content) == (200, b"SUCCESS")
        assert (await client.get("/readyz")).status_code == 200
        restart = asyncio.create_task(asyncio.to_thread(own_broker.restart, 10.0))
        # While it is down: every answer is 503 with Retry-After, none a success; and /readyz
        # says so, so that a load balancer sends the provider's retries elsewhere.
        refused = 0
        readiness_while_down = None
        deadline = time.monotonic() + 60
        while refused < 3:
            assert time.monotonic() < deadline and not restart.done()
            response = await client.post("/v1/yunpian/push", content=bodies[1 + refused])
            if response.status_code == 200:  # not down yet
                bodies.append(bodies.pop(1 + refused))
                continue
            assert response.status_code == 503, response
            assert response.headers["retry-after"] == "7"
            refused += 1
            if refused == 1:
                readiness_while_down = (await client.get("/readyz")).status_code
        assert not restart.done()  # the broker was down for all of the above
        assert readiness_while_down == 503
        await restart
        # The provider's retries: the same bodies again, each until it is a success.
        for body in bodies[1:]:
            for _ in range(100):
                response = await client.post("/v1/yunpian/push", content=body)
                if response.status_code == 200:
                    break
                assert response.status_code == 503
                await asyncio.sleep(0.2)
            answer = (response.status_code, response.content)
            assert answer == (200, b"SUCCESS"), proc.text()[-3000:]
        await asyncio.sleep(1.1)  # past the cached answer of the readiness check
        assert (await client.get("/readyz")).status_code == 200
    assert await proc.stop() == 0
    raw = await drain(bootstrap, topics.raw)
    assert set(bodies) <= {r.value for r in raw}
    processor = spawn(run_args(bootstrap, topics))
    await wait_processed(bootstrap, topics, procs=[processor])
    out = await drain(bootstrap, topics.out)
    events = [json.loads(r.value) for r in out]
    sids = sorted(int(e["message_key"]) for e in events)
    assert sids == sorted(10_000 + i for i in range(20)), sids
    assert await processor.stop() == 0


async def push_until_gone(
    client: httpx.AsyncClient,
    sids: Iterator[int],
    answered: list[tuple[bytes, bytes]],
    *,
    stop_when_refused: bool,
) -> None:
    """Push fresh Yunpian bodies (the next sid each), one at a time, until the ingress is gone
    or, with `stop_when_refused`, answers anything but 200; `answered` gets each 200's body and
    answer."""
    while True:
        body = yunpian_push(next(sids))
        try:
            response = await client.post("/v1/yunpian/push", content=body)
        except httpx.HTTPError:
            return
        if response.status_code == 200:
            answered.append((body, response.content))
        elif stop_when_refused:
            return


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_kill_9_under_load_loses_no_acknowledged_body(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "ingress-kill", raw=3)
    proc, url = await start_ingress(spawn, kafka_bootstrap, topics.raw)
    acknowledged: list[tuple[bytes, bytes]] = []
    sids = itertools.count()
    # Bounded: 16 connections, one request at a time each.
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        loops = [
            asyncio.create_task(
                push_until_gone(client, sids, acknowledged, stop_when_refused=False)
            )
            for _ in range(16)
        ]
        deadline = time.monotonic() + 60
        while len(acknowledged) < 500:
            assert time.monotonic() < deadline, len(acknowledged)
            await asyncio.sleep(0.01)
        proc.kill()  # SIGKILL mid-stream: requests are in flight
        await asyncio.gather(*loops)
    assert {answer for _, answer in acknowledged} == {b"SUCCESS"}
    stored = {r.value for r in await drain(kafka_bootstrap, topics.raw)}
    lost = [b for b, _ in acknowledged if b not in stored]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged bodies not on the topic"


async def test_flood_above_the_bounds_503s_with_flat_memory(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "ingress-flood", raw=2)
    proc, url = await start_ingress(
        spawn,
        kafka_bootstrap,
        topics.raw,
        "--max-in-flight",
        "8",
        "--max-in-flight-bytes",
        str(4 * 1024 * 1024),
        "--request-timeout-s",
        "5",
    )
    port = int(url.rsplit(":", 1)[1])
    # Eight uploads that never finish hold every slot: the next request is refused at once.
    stalled = []
    for _ in range(8):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/yunpian/push HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        await writer.drain()
        stalled.append((reader, writer))
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        refused = await client.post("/v1/yunpian/push", content=b"x")
        assert refused.status_code == 503 and "retry-after" in refused.headers
        # The stalled uploads time out (408) and free their slots.
        for reader, writer in stalled:
            head = await asyncio.wait_for(reader.read(100), 15)
            assert head.startswith(b"HTTP/1.1 408"), head
            writer.close()
        assert (await client.post("/v1/yunpian/push", content=b"x")).status_code == 200

    baseline = rss_kib(proc.pid)
    body = b"sms_status=" + b"%7B" * 100_000  # 300 kB
    statuses: list[int] = []
    peak = baseline

    async def flood(client: httpx.AsyncClient) -> None:
        for _ in range(20):
            statuses.append((await client.post("/v1/yunpian/push", content=body)).status_code)

    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        tasks = [asyncio.create_task(flood(client)) for _ in range(64)]
        while not all(t.done() for t in tasks):
            peak = max(peak, rss_kib(proc.pid))
            await asyncio.sleep(0.02)
        await asyncio.gather(*tasks)
    assert set(statuses) <= {200, 503}, set(statuses)
    assert statuses.count(503) > 0 and statuses.count(200) > 0, statuses.count(200)
    # 1280 bodies of 300 kB went by (384 MB); at most ~4 MB of them are held at once.
    assert peak - baseline < 150 * 1024, (baseline, peak)
    assert proc.alive()
    assert await proc.stop() == 0


async def test_sigterm_under_load_finishes_in_flight_and_flushes(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "ingress-term", raw=2)
    proc, url = await start_ingress(spawn, kafka_bootstrap, topics.raw)
    answered: list[tuple[bytes, bytes]] = []
    sids = itertools.count()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        loops = [
            asyncio.create_task(push_until_gone(client, sids, answered, stop_when_refused=True))
            for _ in range(8)
        ]
        while len(answered) < 200:
            await asyncio.sleep(0.01)
        proc.signal(signal.SIGTERM)
        assert await proc.wait(30) == 0
        await asyncio.gather(*loops)
    assert proc.messages("ingress stopped")
    stored = {r.value for r in await drain(kafka_bootstrap, topics.raw)}
    assert all(b in stored for b, _ in answered)


async def test_tls_from_the_server_options(
    kafka_bootstrap: str, spawn: Spawn, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )

    topics = await make_topics(kafka_bootstrap, "ingress-tls", raw=1)
    proc, url = await start_ingress(
        spawn,
        kafka_bootstrap,
        topics.raw,
        "--tls-certfile",
        str(cert),
        "--tls-keyfile",
        str(key),
    )
    https = url.replace("http://", "https://")
    async with httpx.AsyncClient(
        base_url=https, verify=ssl.create_default_context(cafile=str(cert))
    ) as client:
        response = await client.post("/v1/tencent/callback", content=TENCENT_CALLBACK)
        assert (response.status_code, response.content) == (200, b'{"result":0,"errmsg":"OK"}')
    records = await drain(kafka_bootstrap, topics.raw, count=1)
    assert records[0].value == TENCENT_CALLBACK
    assert await proc.stop() == 0


async def test_sigterm_with_the_broker_down_stops_within_the_bound(
    own_broker: RestartableKafka, spawn: Spawn
) -> None:
    """A body it could not get acknowledged was answered 503, so nothing answered "received"
    is lost: the stop is bounded by --shutdown-timeout-s whatever the broker does, exit 0."""
    bootstrap = own_broker.bootstrap
    topics = await make_topics(bootstrap, "ingress-down-term", raw=1)
    proc, url = await start_ingress(
        spawn, bootstrap, topics.raw, "--ack-timeout-s", "1", "--shutdown-timeout-s", "3"
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        ok = await client.post("/v1/yunpian/push", content=yunpian_push(1))
        assert (ok.status_code, ok.content) == (200, b"SUCCESS")
        own_broker.down()
        refused = await client.post("/v1/yunpian/push", content=yunpian_push(2))
        assert refused.status_code == 503
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert await proc.wait(15) == 0, proc.text()[-3000:]
    assert time.monotonic() - started < 3 + 3, time.monotonic() - started
    assert proc.messages("ingress stopped")


async def test_a_port_in_use_is_one_line_naming_the_setting(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "ingress-port", raw=1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ingress_args(kafka_bootstrap, topics.raw)
        args[args.index("--port") + 1] = str(port)
        proc = spawn(args)
        assert await proc.wait(60) == 2
    lines = [d["raw"] for d in proc.logs if "raw" in d]
    assert lines == [
        f"error: invalid setting port: cannot listen on 127.0.0.1:{port}: Address already in use"
    ], proc.text()[-2000:]

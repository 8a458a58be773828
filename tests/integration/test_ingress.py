"""The webhook ingress against the real broker, served by the real command on loopback, spoken
to by a real HTTP client: each body lands byte for byte, and only then is it answered."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import (
    RestartableKafka,
    drain,
    make_topics,
    parse_metrics,
    run_args,
    scrape,
    wait_committed,
)
from .ingress_helpers import (
    FORM,
    JSON,
    TENCENT_CALLBACK,
    ULTIROAM_PUSH,
    USPEEDO_POLL,
    USPEEDO_PUSH,
    start_ingress,
    yunpian_body,
    yunpian_push,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[RestartableKafka]:
    """A broker of this test alone (the shared one must not go down under other tests)."""
    with RestartableKafka(data_dir=tmp_path / "kafka") as kafka:
        yield kafka


#: (path, body, content-type, the exact success answer)
PUSHES = [
    ("/v1/yunpian/push", yunpian_body(), FORM, b"SUCCESS"),
    ("/v1/tencent/callback", TENCENT_CALLBACK, JSON, b'{"result":0,"errmsg":"OK"}'),
    ("/v1/uspeedo/push", USPEEDO_PUSH, JSON, b""),
    ("/v1/ultiroam/push", ULTIROAM_PUSH, JSON, b""),
    ("/v1/uspeedo/GetUSMSSendReceipt", USPEEDO_POLL, JSON, b"{}"),
]


async def test_each_push_answered_and_stored_byte_for_byte(kafka_bootstrap: str, spawn) -> None:
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
    kafka_bootstrap: str, spawn
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

        async def chunked():  # no Content-Length: the limit holds while reading
            for _ in range(11):
                yield b"y" * 100

        assert (await client.post("/v1/yunpian/push", content=chunked())).status_code == 413
        last = await client.post("/v1/yunpian/push", content=b"z" * 1000)
        assert last.status_code == 200
    records = await drain(kafka_bootstrap, topics.raw, idle_s=1.0)
    assert [r.value for r in records] == [b"z" * 1000]
    assert await proc.stop() == 0


async def test_token_and_allow_list(kafka_bootstrap: str, spawn) -> None:
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
    own_broker: RestartableKafka, spawn
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
        restart = asyncio.create_task(asyncio.to_thread(own_broker.restart, 6.0))
        # While it is down: every answer is 503 with Retry-After, none a success.
        refused = 0
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
    assert await proc.stop() == 0
    raw = await drain(bootstrap, topics.raw)
    assert set(bodies) <= {r.value for r in raw}
    processor = spawn(run_args(bootstrap, topics))
    await wait_committed(bootstrap, topics.group, topics.raw, procs=[processor])
    out = await drain(bootstrap, topics.out)
    events = [json.loads(r.value) for r in out]
    sids = sorted(int(e["message_key"]) for e in events)
    assert sids == sorted(10_000 + i for i in range(20)), sids
    assert await processor.stop() == 0

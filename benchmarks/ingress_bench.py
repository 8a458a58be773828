"""Ingress benchmark: requests/s and latency to acknowledgement of Yunpian pushes on loopback.

Cases, side by side in one run: the ingress as shipped (`python -m pipeline ingress`, every
answer after the broker's ack), and the bare ceiling: the same server (uvicorn + httptools, the
same config) and the same application, with a writer that answers at once and never touches
Kafka. `--servers` adds the bare application under granian (the other candidate; `.[bench]`).
Bodies: 1-report and 100-report Yunpian pushes (form-encoded, distinct sids).

Load: a bounded closed-loop client in this process (uvloop, raw sockets, keep-alive): C
connections on 127.0.0.1, one request at a time each, N requests in all. Latency is from writing
the request to reading the whole answer. Server CPU time comes from /proc (user+system) over the
run; client CPU is this process's. Output verified: every answered body is on the raw topic.

Setup: a local broker (tools.broker.LocalKafka) unless KAFKA_BOOTSTRAP_SERVERS is set.
Command: .venv/bin/python benchmarks/ingress_bench.py [--quick] [--servers]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 3
sys.path.insert(0, str(ROOT))

#: The bare ceiling: the shipped app and server config, the writer replaced by one that answers
#: at once. Run as `python -c BARE <server> <port-file>`.
BARE = r"""
import asyncio, sys
from pipeline.ingress._app import Ingress
from pipeline.ingress._metrics import IngressMetrics
from pipeline.ingress._settings import IngressSettings

class NoKafka:
    started = True
    def submit(self, value, headers, timestamp_ms):
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

settings = IngressSettings(port=0)
app = Ingress(settings, NoKafka(), IngressMetrics())
which, port_file = sys.argv[1], sys.argv[2]
if which == "uvicorn":
    import uvloop
    from pipeline.ingress._server import _Server, bind, server_config
    async def main():
        sock = bind("127.0.0.1", 0)
        open(port_file, "w").write(str(sock.getsockname()[1]))
        await _Server(server_config(app, settings)).serve(sockets=[sock])
    uvloop.run(main())
else:
    import socket
    from granian.constants import Interfaces
    from granian.server.embed import Server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    async def main():
        open(port_file, "w").write(str(port))
        await Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI).serve()
    import uvloop
    uvloop.run(main())
"""


def yunpian_body(first_sid: int, reports: int) -> bytes:
    records = [
        {
            "error_detail": "接收成功",
            "sid": first_sid + i,
            "uid": f"u{first_sid + i}",
            "user_receive_time": "2026-03-17 22:55:21",
            "error_msg": "DELIVRD",
            "mobile": f"1520520{(first_sid + i) % 10_000:04d}",
            "report_status": "SUCCESS",
        }
        for i in range(reports)
    ]
    text = json.dumps(records, ensure_ascii=False, separators=(",", ":"))
    return b"sms_status=" + urllib.parse.quote(text).encode()


def request(body: bytes) -> bytes:
    return (
        b"POST /v1/yunpian/push?account=bench HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded;charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


async def _connection(
    port: int, requests: list[bytes], start: int, step: int, lat: list[float], ok: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(start, len(requests), step):
            t = time.perf_counter()
            writer.write(requests[i])
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().find(b"content-length:")
            length = int(head[at + 15 : head.index(b"\r\n", at)])
            if length:
                await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            if head.startswith(b"HTTP/1.1 200"):
                ok.append(i)
    finally:
        writer.close()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port: int, pid: int, requests: list[bytes], connections: int) -> dict[str, Any]:
    lat: list[float] = []
    ok: list[int] = []
    cpu0, client0, t0 = cpu_s(pid), time.process_time(), time.perf_counter()
    await asyncio.gather(
        *(_connection(port, requests, c, connections, lat, ok) for c in range(connections))
    )
    wall = time.perf_counter() - t0
    lat.sort()
    n = len(lat)
    return {
        "requests": n,
        "ok": ok,
        "rps": n / wall,
        "p50_ms": lat[n // 2] * 1000,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000,
        "server_cpu_us": (cpu_s(pid) - cpu0) / n * 1e6,
        "client_cpu_us": (time.process_time() - client0) / n * 1e6,
        "wall_s": wall,
    }


def start_bare(server: str, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file = tmp / f"port-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE, server, str(port_file)],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        if port_file.exists() and port_file.read_text():
            port = int(port_file.read_text())
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                return proc, port  # listening (granian writes the file before it is)
        time.sleep(0.05)
    raise RuntimeError(f"bare {server} did not start")


def start_ingress(bootstrap: str, topic: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "ingress",
            "--port",
            "0",
            "--raw-topic",
            topic,
            "--bootstrap-servers",
            bootstrap,
            "--max-in-flight",
            "5000",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = json.loads(raw)
        if line.get("msg") == "ingress listening":
            # Keep draining its log so it never blocks on a full pipe.
            import threading

            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(line["port"])
    raise RuntimeError("ingress did not start")


async def topic_values(bootstrap: str, topic: str) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=16 << 20
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        values: list[bytes] = []
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True)):
                return values
            for records in (await consumer.getmany(timeout_ms=500)).values():
                values += [r.value for r in records]
    finally:
        await consumer.stop()


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


async def run(args: argparse.Namespace, bootstrap: str, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for reports, count in ((1, args.requests), (100, max(1000, args.requests // 10))):
        requests = [request(yunpian_body(i * reports, reports)) for i in range(count)]
        size = len(requests[0])
        cases = ["bare uvicorn"] + (["bare granian"] if args.servers else []) + ["ingress"]
        for case in cases:
            if case == "ingress":
                topic = f"bench-ingress-{uuid.uuid4().hex[:8]}"
                await create_topic(bootstrap, topic, PARTITIONS)
                proc, port = start_ingress(bootstrap, topic)
            else:
                proc, port = start_bare(case.split()[1], tmp)
            try:
                await load(port, proc.pid, requests[: min(500, count)], args.connections)  # warm
                result = await load(port, proc.pid, requests, args.connections)
            finally:
                stop(proc)
            if case == "ingress":
                stored = set(await topic_values(bootstrap, topic))
                answered = {requests[i].split(b"\r\n\r\n", 1)[1] for i in result["ok"]}
                missing = answered - stored
                assert not missing, f"{len(missing)} answered bodies not on the topic"
                result["verified"] = f"{len(answered)} answered bodies all on the topic"
            result.pop("ok")
            rows.append({"case": case, "reports": reports, "body_bytes": size, **result})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--servers", action="store_true", help="add the bare granian case")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    if args.quick:
        args.requests = 4000
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="ingress-bench-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    import uvloop

    if bootstrap:
        rows = uvloop.run(run(args, bootstrap, tmp))
    else:
        from tools.broker import LocalKafka

        with LocalKafka() as kafka:
            rows = uvloop.run(run(args, kafka.bootstrap, tmp))
    print()
    print(
        "| case | reports/body | body B | req/s | p50 ms | p99 ms | server CPU µs/req | "
        "client CPU µs/req |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['reports']} | {r['body_bytes']} | {r['rps']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['server_cpu_us']:.0f} | "
            f"{r['client_cpu_us']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The operator's HTTP endpoint — `/metrics`, `/livez`, `/readyz` — and, under `--workers N`,
one endpoint for every worker.

The HTTP server is prometheus_client's (its threading WSGI server and `make_wsgi_app`, in a
daemon thread), with the two probes routed beside the exposition. With workers, each worker
serves its exposition (health included, as `pipeline_live`/`pipeline_ready`) on a private unix
socket in a directory only this user can enter; the parent's endpoint reads every worker at
scrape time and exports their series with a `worker` label, and its probes are those of all
workers together.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.parser import text_string_to_metric_families

from ..errors import ConfigError
from ._probes import Probes

__all__ = ["WorkerSockets", "serve_http", "serve_unix", "serve_workers"]

_log = logging.getLogger("pipeline.metrics")

#: A client that sends nothing (or stops reading) is dropped after this long.
CLIENT_TIMEOUT_S: Final = 10.0
#: Connections served at once; more are closed at once.
MAX_CONNECTIONS: Final = 32
#: How long the parent waits for one worker's exposition.
WORKER_TIMEOUT_S: Final = 2.0
# Always in a new list: wsgiref appends Content-Length to the list it is given.
_TEXT: Final = ("Content-Type", "text/plain; charset=utf-8")


class _QuietHandler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape is noise; the JSON log is for events


class _Server(ThreadingWSGIServer):
    """At most MAX_CONNECTIONS at once (a thread each): a flood of connections is shed, it
    does not grow threads without bound beside the event loop."""

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr (a client that hung up, mostly): one line.
        _log.debug("metrics request failed", exc_info=True)


def _app(registry: CollectorRegistry, probes: Probes) -> WSGIApplication:
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET":  # as prometheus_client's own app
            start_response("405 Method Not Allowed", [_TEXT, ("Allow", "GET")])
            return [b"method not allowed\n"]
        if path == "/metrics":
            try:
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            except Exception:
                _log.exception("rendering metrics failed")
                start_response("500 Internal Server Error", [_TEXT])
                return [b"metrics rendering failed\n"]
        if path in ("/livez", "/readyz"):
            try:
                ok, reason = probes.live() if path == "/livez" else probes.ready()
            except Exception as exc:
                ok, reason = False, f"probe raised {type(exc).__name__}"
            start_response("200 OK" if ok else "503 Service Unavailable", [_TEXT])
            return [f"{reason}\n".encode()]
        start_response("404 Not Found", [_TEXT])
        return [b"not found\n"]

    return app


@contextlib.contextmanager
def serve_http(registry: CollectorRegistry, probes: Probes, host: str, port: int) -> Iterator[int]:
    """Serve the endpoint on `host:port` (0: a free port) while in the block; yields the port."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ConfigError(f"invalid setting metrics_host: {host!r}: {exc.strerror}") from None

    class Server(_Server):
        address_family = family[0][0]  # IPv6 hosts too

    try:
        httpd = make_server(host, port, _app(registry, probes), Server, _QuietHandler)
    except OSError as exc:
        raise ConfigError(
            f"invalid setting metrics_port: cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics", daemon=True
    )
    thread.start()
    try:
        yield httpd.server_port
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------------- workers


@contextlib.contextmanager
def serve_unix(registry: CollectorRegistry, path: str) -> Iterator[None]:
    """A worker's side: every connection to `path` gets the exposition, then EOF."""

    class Handler(socketserver.StreamRequestHandler):
        timeout = CLIENT_TIMEOUT_S

        def handle(self) -> None:
            self.wfile.write(generate_latest(registry))

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a worker that was killed
    server = socketserver.ThreadingUnixStreamServer(path, Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _read_worker(path: str) -> str | None:
    """One worker's exposition, or None when it does not answer (starting, stopped, stuck)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(WORKER_TIMEOUT_S)
            sock.connect(path)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()
    except OSError:
        return None


class WorkerSockets:
    """The parent's side: a private directory of one socket per worker, read at every scrape
    (a collector), and the probes of all workers together."""

    def __init__(self, count: int) -> None:
        self.directory = tempfile.mkdtemp(prefix="pipeline-metrics-")  # mode 0700
        self.paths = [os.path.join(self.directory, f"worker-{i}.sock") for i in range(count)]

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _read_all(self) -> list[str | None]:
        with ThreadPoolExecutor(len(self.paths)) as pool:
            return list(pool.map(_read_worker, self.paths))

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "pipeline_worker_up", "1 when the worker answered this scrape.", labels=("worker",)
        )
        merged: dict[str, Metric] = {}
        for worker, text in enumerate(self._read_all()):
            up.add_metric((str(worker),), 0.0 if text is None else 1.0)
            for family in text_string_to_metric_families(text or ""):
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                for s in family.samples:
                    into.add_sample(s.name, {**s.labels, "worker": str(worker)}, s.value)
        return [up, *merged.values()]

    def _probe(self, name: str) -> tuple[bool, str]:
        failing: list[str] = []
        for worker, text in enumerate(self._read_all()):
            if text is None:
                failing.append(f"worker {worker} not answering")
                continue
            for family in text_string_to_metric_families(text):
                if family.name == f"pipeline_{name}" and any(s.value != 1 for s in family.samples):
                    failing.append(f"worker {worker} not {name}")
        return (not failing, "; ".join(failing) or "ok")

    def live(self) -> tuple[bool, str]:
        return self._probe("live")

    def ready(self) -> tuple[bool, str]:
        return self._probe("ready")


@contextlib.contextmanager
def serve_workers(count: int, host: str, port: int) -> Iterator[tuple[list[str], int]]:
    """The parent's endpoint for `count` workers while in the block: yields the socket path
    each worker is to serve on, and the port bound."""
    sockets = WorkerSockets(count)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(sockets)
    try:
        with serve_http(registry, sockets, host, port) as bound:
            yield sockets.paths, bound
    finally:
        sockets.close()

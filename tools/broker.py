"""A throwaway Apache Kafka (KRaft) for tests, benchmarks and people: one node (`LocalKafka`,
plaintext or secured) or a quorum of three (`LocalCluster`, replication 3).

The jars come from Maven Central (``org.apache.kafka:kafka_2.13`` plus its runtime dependencies,
fetched once with ``mvn dependency:copy-dependencies``) into
``${XDG_CACHE_HOME:-~/.cache}/sms-pipeline/kafka-<version>/libs``. Each broker gets free loopback
ports and a fresh temporary data directory, so several can run at once; it dies with the process
that started it (Linux ``PR_SET_PDEATHSIG``), and leftovers of killed runs are cleaned up on the
next start. Needs Java 17+ and Maven; set ``KAFKA_BOOTSTRAP_SERVERS`` to use an existing broker.

Kafka version: 4.3.1, the newest 4.x that is completely published on Maven Central. 4.4.0 is
listed as the latest release, but its POM depends on ``org.apache.kafka:kafka-tools-api:4.4.0``,
which is not on Central (HTTP 404), so fetching its runtime dependencies fails. aiokafka 0.14
negotiates API versions and was checked against 4.3.1 (and 4.4.0 with that artifact excluded):
admin create_topics, idempotent and transactional producers with lz4/zstd, group consumers with
manual commits all work.

Log4j2 (``log4j-core`` + ``log4j-slf4j-impl``) is fetched alongside because Kafka's published POM
leaves the logging backend to the distribution; without it the broker logs nothing at all.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import ctypes
import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.25.5"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MARKER = "COMPLETE"
_T = TypeVar("_T")

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sms-pipeline</groupId><artifactId>kafka-fetch</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


class BrokerError(RuntimeError):
    """The local Kafka broker could not be provisioned, started or reached."""


def kafka_bootstrap_from_env() -> str | None:
    """The externally provided broker (``KAFKA_BOOTSTRAP_SERVERS``), if any."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sms-pipeline"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _read_tail(*paths: Path, lines: int = 40) -> str:
    parts = []
    for path in paths:
        with contextlib.suppress(OSError):
            if text := _tail(path.read_text(errors="replace"), lines):
                parts.append(f"--- {path} ---\n{text}")
    return "\n".join(parts) or "(no log output)"


def find_java() -> str:
    """Path of a Java 17+ executable (``JAVA``, then ``$JAVA_HOME/bin/java``, then ``PATH``)."""
    if os.environ.get("JAVA"):
        java, where = os.environ["JAVA"], "JAVA"
    elif os.environ.get("JAVA_HOME"):
        java, where = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"), "JAVA_HOME"
    else:
        java, where = shutil.which("java") or "", "PATH"
    hint = "Install Java 17+ or set KAFKA_BOOTSTRAP_SERVERS to use an existing broker."
    if not java or not os.access(java, os.X_OK):
        raise BrokerError(
            f"Java 17+ is required to run Kafka, but no java was found via {where} "
            f"({java or 'not on PATH'}). {hint}"
        )
    try:
        version = _java_version(java)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BrokerError(
            f"Java 17+ is required to run Kafka, but {java} failed: {exc}. {hint}"
        ) from exc
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    major = int(found[1]) if found else 0
    if major == 1 and found and found[2]:  # "1.8.0_x" style
        major = int(found[2])
    if major < 17:
        raise BrokerError(
            f"Java 17+ is required to run Kafka, but {java} is "
            f"{_tail(version, 1) or 'unusable'}. {hint}"
        )
    return java


@functools.lru_cache(maxsize=8)
def _java_version(java: str) -> str:
    out = subprocess.run(
        [java, "-version"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return out.stderr + out.stdout


def _cds_archive(java: str, libs: Path) -> Path:
    # Keyed by the JVM build: an archive only maps into the exact JVM that wrote it.
    tag = hashlib.sha256(f"{os.path.realpath(java)}\n{_java_version(java)}".encode()).hexdigest()
    return libs.parent / f"cds-{tag[:16]}.jsa"


def fetch_kafka(version: str = KAFKA_VERSION, *, timeout: float = 900.0) -> Path:
    """Download Kafka's jars once into the user cache; return the ``libs`` directory."""
    home = cache_root() / f"kafka-{version}"
    libs = home / "libs"
    if (home / _MARKER).is_file():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(home / ".lock", "w") as lock:
        # Another launcher may be downloading the same version: wait for it (bounded).
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"timed out waiting for another download into {home}"
                    ) from None
                time.sleep(0.5)
        if (home / _MARKER).is_file():
            return libs
        for stale in home.glob("fetch-*"):  # we hold the lock: these are from killed runs
            shutil.rmtree(stale, ignore_errors=True)
        mvn = os.environ.get("MVN") or shutil.which("mvn")
        if not mvn or not os.access(mvn, os.X_OK):
            raise BrokerError(
                f"Maven (mvn) is required to download Kafka {version} from Maven "
                f"Central, but it was not found ({mvn or 'not on PATH'}). Install "
                "Maven or set KAFKA_BOOTSTRAP_SERVERS to use an existing broker."
            )
        staging = Path(tempfile.mkdtemp(prefix="fetch-", dir=home))
        try:
            (staging / "pom.xml").write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
            cmd = [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(staging / "pom.xml"),
                f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging / 'libs'}",
            ]
            try:
                res = subprocess.run(
                    cmd,
                    cwd=staging,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=max(1.0, deadline - time.monotonic()),
                )
                output, code = res.stdout, str(res.returncode)
            except subprocess.TimeoutExpired as exc:
                output, code = str(exc.output or ""), "timeout"
            except OSError as exc:
                output, code = str(exc), "not runnable"
            if code != "0" or not (staging / "libs" / f"kafka_2.13-{version}.jar").is_file():
                raise BrokerError(
                    f"Kafka {version} jars could not be fetched from Maven Central "
                    f"(mvn exit {code}). Last mvn output:\n{_tail(output)}"
                )
            shutil.rmtree(libs, ignore_errors=True)  # a half-finished earlier attempt
            (staging / "libs").rename(libs)
            (home / _MARKER).write_text(f"kafka {version}, log4j {LOG4J_VERSION}\n")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return libs


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))  # held together, so the ports are distinct
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _proc_start_time(pid: int) -> str | None:
    """Kernel start time of a live (non-zombie) process; tells a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _proc_state(pid: int) -> str:
    """The kernel's one-letter state of `pid` (``T``: stopped), ``X`` when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "X"


def _is_our_broker(pid: int, data_dir: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and data_dir.encode() in cmdline


def _registry() -> Path:
    path = cache_root() / "brokers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reap_stale_brokers() -> None:
    """Kill brokers and delete temp data dirs left behind by runs whose owner process is gone."""
    for entry in _registry().glob("*.json"):
        try:
            info = json.loads(entry.read_text())
            owner, started = int(info["owner"]), info["owner_start"]
            pid, data_dir, remove = int(info.get("pid") or 0), str(info["data_dir"]), info["remove"]
        except (OSError, ValueError, KeyError, TypeError):
            entry.unlink(missing_ok=True)
            continue
        if _proc_start_time(owner) == started:
            continue  # its owner is alive: not ours to touch
        if pid and _is_our_broker(pid, data_dir):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            for _ in range(100):  # it must release the data dir lock before reuse
                if _proc_start_time(pid) is None:
                    break
                time.sleep(0.05)
        if remove:
            shutil.rmtree(data_dir, ignore_errors=True)
        entry.unlink(missing_ok=True)


def _register(entry: Path | None, pid: int, data_dir: Path, *, remove: bool) -> Path:
    """Record (in `entry`, else a new one) that this process runs node `pid` (0: none yet) on
    `data_dir`, for `reap_stale_brokers`; the entry's path."""
    if entry is None:
        entry = _registry() / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
    info = {
        "owner": os.getpid(),
        "owner_start": _proc_start_time(os.getpid()),
        "pid": pid,
        "data_dir": str(data_dir),
        "remove": remove,
    }
    tmp = entry.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(entry)  # atomic: the reaper never reads half an entry
    return entry


def _die_with_parent() -> Callable[[], None]:
    """A preexec_fn: SIGKILL the child when the thread that spawned it dies."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def preexec() -> None:
        if prctl is not None:
            prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _metadata_ready(
    port: int, timeout: float, tls: ssl.SSLContext | None = None, brokers: int = 1
) -> bool:
    """Send a raw Metadata v4 request; ready once the broker lists `brokers` live (unfenced)
    brokers, itself included. With `tls`, over TLS (the secured broker's mutual-TLS listener,
    as the broker itself)."""
    client = b"sms-pipeline-launcher"
    request = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">ib", 0, 0)
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(
                socket.create_connection(("127.0.0.1", port), timeout=timeout)
            )
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname="127.0.0.1"))
            sock.sendall(struct.pack(">i", len(request)) + request)
            data = b""
            while len(data) < 16:  # size, correlation id, throttle, broker count
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
        _size, correlation, _throttle, listed = struct.unpack_from(">iiii", data)
        return bool(correlation == 7 and listed >= brokers)
    except OSError:
        return False


# -- the secured mode: a CA, certificates and SCRAM users of its own ------------------------------

#: The SASL mechanism of the secured broker's SASL_SSL listener.
SCRAM_MECHANISM = "SCRAM-SHA-512"
#: The broker's own principal (its certificate's CN), a super user like `admin`.
BROKER_PRINCIPAL = "kafka-broker"
#: The users the secured broker knows: SCRAM credentials and a client certificate each.
SECURED_USERS = ("admin", "processor", "single", "exactly-once", "ingress", "redrive", "nobody")


class ClientCert(NamedTuple):
    """A client's PEM certificate and key; `encrypted_key` is the same key under
    `Security.key_password` (PKCS#8, AES-256)."""

    cert: Path
    key: Path
    encrypted_key: Path


@dataclass(frozen=True)
class Security:
    """What a client of the secured broker needs. Principals are the bare user names on both
    listeners (a certificate's CN is mapped to its user: `CN=processor` is `User:processor`)."""

    #: SASL_SSL listener (SCRAM-SHA-512), ``127.0.0.1:port``.
    sasl_bootstrap: str
    #: SSL listener with mutual TLS (client certificates signed by `ca_file` required).
    ssl_bootstrap: str
    #: The CA (PEM) that signs the broker's and the clients' certificates.
    ca_file: Path
    #: SCRAM-SHA-512 password of each user (`admin` is a super user).
    passwords: dict[str, str] = field(repr=False)
    #: Client certificate of each user, signed by `ca_file`.
    certs: dict[str, ClientCert]
    #: A certificate for CN=processor signed by another CA: the broker must refuse it.
    foreign: ClientCert
    #: The password of every `ClientCert.encrypted_key`.
    key_password: str = field(repr=False)
    mechanism: str = SCRAM_MECHANISM


def _openssl(*args: str | Path, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("openssl is required for the secured broker, but it is not on PATH")
    res = subprocess.run(
        [openssl, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if res.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed:\n{_tail(res.stdout + res.stderr)}")


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _make_ca(tls: Path, name: str) -> None:
    _openssl(
        "req", "-x509", *_EC, "-days", "30", "-sha256",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=sms-pipeline {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=tls,
    )  # fmt: skip


def _issue(tls: Path, name: str, cn: str, ca: str, usage: str, password: str) -> ClientCert:
    """A key and a certificate for `cn` signed by CA `ca` (files `<name>.pem`, `<name>.key`,
    `<name>.enc.key`)."""
    (tls / f"{name}.ext").write_text(
        f"subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\n"
        "keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"
    )
    _openssl("req", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}", cwd=tls)  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-set_serial", f"0x{secrets.token_hex(16)}", "-days", "30", "-sha256",
        "-extfile", f"{name}.ext", "-out", f"{name}.pem",
        cwd=tls,
    )  # fmt: skip
    _openssl("pkcs8", "-topk8", "-v2", "aes256", "-in", f"{name}.key", "-out", f"{name}.enc.key",
             "-passout", f"pass:{password}", cwd=tls)  # fmt: skip
    for leftover in (f"{name}.csr", f"{name}.ext"):
        (tls / leftover).unlink()
    return ClientCert(tls / f"{name}.pem", tls / f"{name}.key", tls / f"{name}.enc.key")


def _security_material(data: Path) -> tuple[dict[str, str], str]:
    """The CAs, certificates and passwords of a secured broker in `<data>/tls` (made once; a
    kept data dir reuses them, its SCRAM credentials having been formatted in)."""
    tls = data / "tls"
    users_file = tls / "users.json"
    if users_file.is_file():
        saved = json.loads(users_file.read_text())
        return dict(saved["passwords"]), str(saved["key_password"])
    shutil.rmtree(tls, ignore_errors=True)  # a half-made earlier attempt
    tls.mkdir(mode=0o700, parents=True)
    passwords = {user: secrets.token_hex(12) for user in SECURED_USERS}
    key_password = secrets.token_hex(12)
    _make_ca(tls, "ca")
    _make_ca(tls, "foreign-ca")
    broker = _issue(tls, "broker", BROKER_PRINCIPAL, "ca", "serverAuth,clientAuth", key_password)
    # Kafka's PEM key store: the (PKCS#8, unencrypted) key and the certificate in one file.
    (tls / "broker-keystore.pem").write_text(broker.key.read_text() + broker.cert.read_text())
    for user in SECURED_USERS:
        _issue(tls, user, user, "ca", "clientAuth", key_password)
    _issue(tls, "foreign", "processor", "foreign-ca", "clientAuth", key_password)
    tmp = tls / "users.json.tmp"
    tmp.write_text(json.dumps({"passwords": passwords, "key_password": key_password}))
    tmp.chmod(0o600)
    tmp.replace(users_file)
    return passwords, key_password


def _broker_tls_context(tls: Path) -> ssl.SSLContext:
    """The launcher's own TLS client (for its readiness probe): the broker's certificate."""
    context = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    context.load_cert_chain(tls / "broker.pem", tls / "broker.key")
    return context


def _class_data(java: str, libs: Path, data: Path) -> tuple[Path, list[str]]:
    """The class-data archive and the JVM flags that map it (none while it does not exist yet).

    Class-data sharing: the first cleanly stopped broker dumps its loaded classes into an
    archive that later JVMs map instead of parsing them again (~40 % less startup CPU)."""
    archive = _cds_archive(java, libs)
    (data / "cds.jsa.tmp").unlink(missing_ok=True)
    return archive, [f"-XX:SharedArchiveFile={archive}"] if archive.is_file() else []


def _format_storage(
    java: str, libs: Path, data: Path, cluster_id: str, shared: list[str], extra: list[str]
) -> None:
    """Format the node's log dir (``<data>/server.properties``) for `cluster_id`."""
    format_log4j = data / "log4j2-format.properties"  # keeps its config dump out of server.log
    format_log4j.write_text(_LOG4J.format(log=data / "format.log", level="WARN"))
    # A one-shot tool: C1-only JIT and serial GC shave ~0.5 s off its run.
    cmd = [
        java,
        "-Xmx256m",
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        *shared,
        "-cp",
        f"{libs}/*",
        f"-Dlog4j2.configurationFile={format_log4j}",
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(data / "server.properties"),
        "--ignore-formatted",
        *extra,
    ]
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=data
        )
    except subprocess.TimeoutExpired:
        raise BrokerError("Kafka StorageTool format timed out after 60 s") from None
    if res.returncode != 0:
        raise BrokerError(f"Kafka StorageTool format failed:\n{_tail(res.stdout + res.stderr)}")


def _spawn_node(
    java: str, libs: Path, data: Path, heap: str, heap_initial: str, cds: list[str]
) -> subprocess.Popen[bytes]:
    """Start the node of ``<data>/server.properties`` (`cds`: its class-data sharing flags); it
    dies with the thread that called this."""
    jvm = [
        java,
        f"-Xmx{heap}",
        f"-Xms{heap_initial}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-XX:ErrorFile={data}/hs_err_%p.log",
        *cds,
        "-cp",
        f"{libs}/*",
        f"-Dlog4j2.configurationFile={data / 'log4j2.properties'}",
        "kafka.Kafka",
        str(data / "server.properties"),
    ]
    with open(data / "kafka.out", "ab") as out:  # JVM stdout/stderr: never on ours
        return subprocess.Popen(
            jvm,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )


def _wait_ready(
    proc: subprocess.Popen[bytes],
    data: Path,
    port: int,
    timeout: float,
    *,
    tls: ssl.SSLContext | None = None,
    brokers: int = 1,
) -> None:
    """Until the node on `port` lists `brokers` live brokers; raises if it exits or is late."""
    deadline = time.monotonic() + timeout
    while not _metadata_ready(
        port, timeout=min(2.0, max(0.1, deadline - time.monotonic())), tls=tls, brokers=brokers
    ):
        if proc.poll() is not None:
            logs = _read_tail(data / "kafka.out", data / "server.log")
            if "Address already in use" in logs:
                raise _PortTaken
            raise BrokerError(f"Kafka exited during startup. Log tail:\n{logs}")
        if time.monotonic() > deadline:
            logs = _read_tail(data / "kafka.out", data / "server.log")
            raise BrokerError(
                f"Kafka did not become ready within {timeout:.0f} s. Log tail:\n{logs}"
            )
        time.sleep(0.1)


def _data_dir(given: Path | None, prefix: str) -> Path:
    """`given` (made if missing), else a fresh temporary directory named `prefix`..."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    given.mkdir(parents=True, exist_ok=True)
    return given


class _Running:
    """A local Kafka as a context manager: `start()` on entry, `stop()` on exit."""

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _start(
    version: str,
    launch: Callable[[str, Path], None],
    stop: Callable[[], None],
    port: int | None,
    retry: Callable[[], None] = lambda: None,
) -> None:
    """`launch(java, libs)` (downloading Kafka on first use), again on new free ports (after
    `retry()`) when one was taken meanwhile; `stop()` when it fails."""
    java = find_java()  # first, so a missing Java fails fast even with a cold cache
    libs = fetch_kafka(version)
    reap_stale_brokers()
    atexit.register(stop)
    try:
        for _ in range(3):
            try:
                launch(java, libs)
                return
            except _PortTaken:
                if port is not None:
                    raise BrokerError(
                        f"Kafka could not bind port {port}: address already in use"
                    ) from None
                retry()
        raise BrokerError("Kafka could not bind free loopback ports (3 tries)")
    except BaseException:
        stop()
        raise


class LocalKafka(_Running):
    """One single-node KRaft broker (broker+controller) on free loopback ports.

    ``data_dir=None`` (the default) uses a fresh temporary directory, removed on ``stop()``; a
    given ``data_dir`` is formatted once and kept, so its topics survive restarts. Broker logs
    go to ``<data dir>/server.log``. Call ``start()`` from a long-lived thread: Linux delivers the
    parent-death signal when the spawning *thread* exits.

    ``secured=True`` runs what production runs instead of one PLAINTEXT listener: a SASL_SSL
    listener (SCRAM-SHA-512; ``bootstrap``) and an SSL listener requiring client certificates
    (``security.ssl_bootstrap``), both with a CA of its own made in ``<data dir>/tls``, the
    StandardAuthorizer denying whatever no ACL allows, and super users ``admin`` and the broker
    itself. ``security`` holds what clients need. ``port`` pins the client port (the SASL_SSL
    one when secured) instead of a free one.
    """

    def __init__(
        self,
        version: str = KAFKA_VERSION,
        *,
        heap: str = "512m",
        heap_initial: str = "256m",
        data_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        secured: bool = False,
        port: int | None = None,
    ) -> None:
        self.version = version
        self.secured = secured
        self._fixed_port = port
        self._security: Security | None = None
        self.heap, self.heap_initial = heap, heap_initial
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self._given_dir = Path(data_dir).resolve() if data_dir is not None else None
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._entry: Path | None = None
        self._cds: Path | None = None  # where to keep this run's class-data archive, if any

    @property
    def bootstrap(self) -> str:
        if not self.running:
            raise BrokerError("the local Kafka broker is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def security(self) -> Security:
        """What a client of the secured broker needs (listeners, CA, users, certificates)."""
        if not self.running:
            raise BrokerError("the local Kafka broker is not running")
        if self._security is None:
            raise BrokerError("the local Kafka broker is not secured (LocalKafka(secured=True))")
        return self._security

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def data_dir(self) -> Path | None:
        return self._dir

    @property
    def log_file(self) -> Path | None:
        return self._dir / "server.log" if self._dir else None

    @property
    def authorizer_log(self) -> Path | None:
        """Secured mode: every authorization decision, allowed (DEBUG) or denied (INFO)."""
        return self._dir / "authorizer.log" if self._dir and self.secured else None

    def start(self) -> str:
        """Start the broker (downloading Kafka on first use); return ``127.0.0.1:port``."""
        if self.running:
            return self.bootstrap
        _start(self.version, self._launch, self.stop, self._fixed_port)
        return self.bootstrap

    def _launch(self, java: str, libs: Path) -> None:
        if self._dir is None:
            self._dir = _data_dir(self._given_dir, "sms-kafka-")
            self._register(pid=0)  # before the JVM exists, so a crash here leaves no orphan dir
        data = self._dir
        tls = data / "tls"
        scram: list[str] = []
        if self.secured:
            passwords, key_password = _security_material(data)
            for user, password in passwords.items():
                scram += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        count = 3 if self.secured else 2
        if self._fixed_port is None:
            port, *others = _free_ports(count)
        else:
            port, others = self._fixed_port, _free_ports(count - 1)
        props, log4j = data / "server.properties", data / "log4j2.properties"
        if self.secured:
            ssl_port, controller_port = others
            props.write_text(_secured_properties(data / "kraft-logs", tls, *others, port=port))
        else:
            (controller_port,) = others
            props.write_text(_server_properties(data / "kraft-logs", port, controller_port))
        log4j.write_text(
            _LOG4J.format(log=data / "server.log", level="INFO")
            + (_AUTHORIZER_LOG4J.format(log=data / "authorizer.log") if self.secured else "")
        )
        archive, shared = _class_data(java, libs, data)
        self._cds = None if shared else archive
        if not (data / "kraft-logs" / "meta.properties").is_file():
            _format_storage(java, libs, data, _cluster_id(), shared, scram)
        cds = shared or [f"-XX:ArchiveClassesAtExit={data / 'cds.jsa.tmp'}"]
        self._proc = _spawn_node(java, libs, data, self.heap, self.heap_initial, cds)
        self._port = port
        self._register(pid=self._proc.pid)
        probe_port, probe_tls = port, None
        if self.secured:
            probe_port, probe_tls = ssl_port, _broker_tls_context(tls)
        try:
            _wait_ready(self._proc, data, probe_port, self.start_timeout, tls=probe_tls)
        except _PortTaken:
            self._proc = None
            raise
        if self.secured:
            self._security = Security(
                sasl_bootstrap=f"127.0.0.1:{port}",
                ssl_bootstrap=f"127.0.0.1:{ssl_port}",
                ca_file=tls / "ca.pem",
                passwords=passwords,
                certs={user: _client_cert(tls, user) for user in passwords},
                foreign=_client_cert(tls, "foreign"),
                key_password=key_password,
            )

    def _register(self, pid: int) -> None:
        assert self._dir is not None
        self._entry = _register(self._entry, pid, self._dir, remove=self._given_dir is None)

    def stop(self) -> None:
        """SIGTERM, wait for a clean shutdown, then SIGKILL; remove a temporary data dir."""
        proc, self._proc = self._proc, None
        self._security = None
        clean = False
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:  # writing the class-data archive on exit takes a few more seconds
                proc.wait(timeout=self.stop_timeout + (30 if self._cds else 0))
                clean = True
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        dump = self._dir / "cds.jsa.tmp" if self._dir is not None else None
        if clean and self._cds is not None and dump is not None and dump.is_file():
            with contextlib.suppress(OSError):  # only a complete dump; atomic for other readers
                staged = self._cds.with_name(f"{self._cds.name}.{uuid.uuid4().hex}")
                shutil.move(dump, staged)
                staged.replace(self._cds)
        self._cds = None
        if self._dir is not None and self._given_dir is None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        if self._entry is not None:
            self._entry.unlink(missing_ok=True)
            self._entry = None
        atexit.unregister(self.stop)


@dataclass
class _Node:
    """One node of a `LocalCluster`: its id, data dir, ports and process."""

    id: int
    dir: Path
    port: int = 0
    controller_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    entry: Path | None = None
    frozen: bool = False


class LocalCluster(_Running):
    """A KRaft quorum of `nodes` combined broker+controller nodes (three by default) on free
    loopback ports, what production runs: every topic, internal ones included, defaults to
    `nodes` replicas with ``min.insync.replicas`` one less (3 and 2).

    The nodes' data dirs are ``<run dir>/node-<id>`` (logs in ``server.log`` there); the run dir
    is a fresh temporary one removed on ``stop()`` unless `data_dir` is given. `port` pins the
    client port of node 1. Call ``start()`` and ``start_node()`` from a long-lived thread, like
    ``LocalKafka.start()``.

    Faults, one node at a time: ``kill`` (SIGKILL), ``start_node`` / ``wait_node`` / ``restart``
    (on the same ports and data, so clients holding the bootstrap list reconnect), ``freeze``
    (SIGSTOP) and ``thaw`` (SIGCONT). Who does what: ``leaders(topic)``,
    ``coordinator(group)``, ``wait_in_sync()`` (aiokafka's admin client).
    """

    def __init__(
        self,
        nodes: int = 3,
        version: str = KAFKA_VERSION,
        *,
        heap: str = "256m",
        heap_initial: str = "64m",
        data_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        start_timeout: float = 120.0,
        stop_timeout: float = 15.0,
    ) -> None:
        if nodes < 1:
            raise BrokerError(f"a cluster needs at least one node, not {nodes}")
        self.version = version
        self.heap, self.heap_initial = heap, heap_initial
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self._given_dir = Path(data_dir).resolve() if data_dir is not None else None
        self._fixed_port = port
        self._dir: Path | None = None
        self._entry: Path | None = None
        self._nodes: dict[int, _Node] = {}
        self._count = nodes
        self._java = ""
        self._libs = Path()
        self._cds: list[str] = []

    # -- what clients and tests see

    @property
    def node_ids(self) -> list[int]:
        return list(range(1, self._count + 1))

    @property
    def bootstrap(self) -> str:
        """Every node's client address, comma-separated (whichever nodes are up)."""
        if not self._nodes or not any(n.proc is not None for n in self._nodes.values()):
            raise BrokerError("the local Kafka cluster is not running")
        return ",".join(self.address(node) for node in self._nodes)

    def address(self, node: int) -> str:
        return f"127.0.0.1:{self._node(node).port}"

    @property
    def data_dir(self) -> Path | None:
        return self._dir

    def log_file(self, node: int) -> Path:
        return self._node(node).dir / "server.log"

    def pid(self, node: int) -> int | None:
        proc = self._node(node).proc
        return proc.pid if proc is not None else None

    def running(self, node: int) -> bool:
        """The node's process is alive (frozen counts as alive)."""
        proc = self._node(node).proc
        return proc is not None and proc.poll() is None

    def frozen(self, node: int) -> bool:
        return self._node(node).frozen

    def _node(self, node: int) -> _Node:
        try:
            return self._nodes[node]
        except KeyError:
            raise BrokerError(f"no node {node} (nodes: {self.node_ids}; started?)") from None

    # -- the whole cluster

    def start(self) -> str:
        """Start every node (downloading Kafka on first use) and wait until each lists all
        of them as live brokers; return the bootstrap list."""
        if self._nodes and all(self.running(node) for node in self._nodes):
            return self.bootstrap
        _start(self.version, self._launch, self.stop, self._fixed_port, retry=self._kill_all)
        return self.bootstrap

    def _launch(self, java: str, libs: Path) -> None:
        self._java, self._libs = java, libs
        if self._dir is None:
            self._dir = _data_dir(self._given_dir, "sms-kafka-cluster-")
            # The run dir, before any JVM exists: a crash here leaves no orphan dir.
            self._entry = _register(None, 0, self._dir, remove=self._given_dir is None)
        run = self._dir
        ports = _free_ports(2 * self._count - (self._fixed_port is not None))
        if self._fixed_port is not None:
            ports.insert(0, self._fixed_port)
        self._nodes = {
            i: _Node(i, run / f"node-{i}", ports[2 * k], ports[2 * k + 1])
            for k, i in enumerate(self.node_ids)
        }
        voters = ",".join(f"{n.id}@127.0.0.1:{n.controller_port}" for n in self._nodes.values())
        for n in self._nodes.values():
            n.dir.mkdir(exist_ok=True)
            (n.dir / "server.properties").write_text(
                _server_properties(
                    n.dir / "kraft-logs",
                    n.port,
                    n.controller_port,
                    node_id=n.id,
                    voters=voters,
                    replicas=self._count,
                )
            )
            (n.dir / "log4j2.properties").write_text(
                _LOG4J.format(log=n.dir / "server.log", level="INFO")
            )
        # The archive a single node made, if any; nodes that are killed never write one.
        _archive, self._cds = _class_data(self._java, self._libs, run)
        id_file = run / "cluster.id"
        if not id_file.is_file():
            id_file.write_text(_cluster_id())
        cluster_id = id_file.read_text().strip()
        unformatted = [
            n for n in self._nodes.values() if not (n.dir / "kraft-logs/meta.properties").is_file()
        ]
        with ThreadPoolExecutor(max(1, len(unformatted))) as pool:  # one JVM each: in parallel
            for done in [
                pool.submit(
                    _format_storage, self._java, self._libs, n.dir, cluster_id, self._cds, []
                )
                for n in unformatted
            ]:
                done.result()
        for node in self._nodes:
            self.start_node(node)
        deadline = time.monotonic() + self.start_timeout
        for n in self._nodes.values():  # a quorum forms only once a majority runs: all started
            assert n.proc is not None
            _wait_ready(
                n.proc, n.dir, n.port, max(1.0, deadline - time.monotonic()), brokers=self._count
            )

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after `stop_timeout`; at once when the data
        is thrown away); remove a temporary run dir."""
        temporary = self._given_dir is None
        procs = [n.proc for n in self._nodes.values() if n.proc is not None]
        for n in self._nodes.values():
            if n.proc is not None and n.frozen:
                with contextlib.suppress(OSError):
                    os.kill(n.proc.pid, signal.SIGCONT)
        for proc in procs:
            if proc.poll() is None:
                if temporary:
                    proc.kill()
                else:
                    proc.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for n in self._nodes.values():
            n.proc, n.frozen = None, False
            if n.entry is not None:
                n.entry.unlink(missing_ok=True)
                n.entry = None
        if self._dir is not None and temporary:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        if self._entry is not None:
            self._entry.unlink(missing_ok=True)
            self._entry = None
        atexit.unregister(self.stop)

    def _kill_all(self) -> None:
        for node in self._nodes:
            self.kill(node)

    # -- one node

    def start_node(self, node: int) -> None:
        """Start a stopped node on its ports and data, without waiting (see `wait_node`)."""
        n = self._node(node)
        if self.running(node):
            raise BrokerError(f"node {node} is already running")
        n.proc = _spawn_node(self._java, self._libs, n.dir, self.heap, self.heap_initial, self._cds)
        n.frozen = False
        n.entry = _register(n.entry, n.proc.pid, n.dir, remove=False)

    def wait_node(self, node: int, timeout: float | None = None) -> None:
        """Until `node` answers and lists every node as a live broker."""
        n = self._node(node)
        if n.proc is None:
            raise BrokerError(f"node {node} is not running")
        try:
            _wait_ready(n.proc, n.dir, n.port, timeout or self.start_timeout, brokers=self._count)
        except _PortTaken:
            raise BrokerError(f"node {node} could not bind port {n.port} again") from None

    def restart(self, node: int) -> None:
        """SIGKILL `node` if it runs, start it again on its ports and data, wait until ready."""
        self.kill(node)
        self.start_node(node)
        self.wait_node(node)

    def kill(self, node: int) -> None:
        """SIGKILL `node` (frozen or not) and reap it."""
        n = self._node(node)
        if n.proc is not None:
            if n.proc.poll() is None:
                n.proc.kill()
            n.proc.wait(timeout=30)
        n.proc, n.frozen = None, False

    def freeze(self, node: int) -> None:
        """SIGSTOP `node`, and wait until it is stopped: its sockets stay open and answer
        nothing, as in a long GC pause."""
        self._signal(node, signal.SIGSTOP, stopped=True)
        self._node(node).frozen = True

    def thaw(self, node: int) -> None:
        """SIGCONT a frozen `node`, and wait until it runs again."""
        self._signal(node, signal.SIGCONT, stopped=False)
        self._node(node).frozen = False

    def _signal(self, node: int, signum: signal.Signals, *, stopped: bool) -> None:
        if not self.running(node):
            raise BrokerError(f"node {node} is not running")
        pid = self.pid(node)
        assert pid is not None
        os.kill(pid, signum)
        deadline = time.monotonic() + 10
        while (_proc_state(pid) == "T") != stopped:  # signals are delivered asynchronously
            if time.monotonic() > deadline:
                raise BrokerError(f"node {node} (pid {pid}) did not take {signum.name}")
            time.sleep(0.01)

    # -- who leads what (aiokafka's admin client, through the nodes that answer)

    def _admin(self) -> Any:
        from aiokafka.admin import AIOKafkaAdminClient

        live = [
            self.address(n.id)
            for n in self._nodes.values()
            if n.proc is not None and n.proc.poll() is None and not n.frozen
        ]
        # Short timeouts: a node that just died or froze must not hold a question for 40 s.
        return AIOKafkaAdminClient(
            bootstrap_servers=",".join(live), request_timeout_ms=5000, retry_backoff_ms=100
        )

    async def _ask(self, question: Callable[[Any], Awaitable[_T]], timeout: float = 30.0) -> _T:
        """`question(admin)`, asked again while the answer is a retriable error (a node that
        just died or froze is still in the metadata until it is fenced)."""
        from aiokafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        admin = self._admin()
        await admin.start()
        try:
            while True:
                try:
                    return await question(admin)
                except KafkaError as exc:
                    if not exc.retriable or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        finally:
            await admin.close()

    async def _describe(self) -> list[dict[str, Any]]:
        """Metadata of every topic (asking for all of them creates none)."""
        topics: list[dict[str, Any]] = await self._ask(lambda admin: admin.describe_topics())
        return topics

    async def leaders(self, topic: str) -> dict[int, int]:
        """The leader node of each partition of `topic` (-1: none at the moment)."""
        for entry in await self._describe():
            if entry["topic"] == topic:
                return {int(p["partition"]): int(p["leader"]) for p in entry["partitions"]}
        raise BrokerError(f"topic {topic!r} does not exist")

    async def coordinator(self, group: str) -> int:
        """The node that coordinates consumer group `group`."""
        node: int = await self._ask(lambda admin: admin.find_coordinator(group))
        return node

    async def wait_in_sync(self, timeout: float = 60.0) -> None:
        """Until every partition of every topic has a leader and all its replicas in sync
        (after a node came back: the next fault must not find partitions one replica short)."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = [
                (t["topic"], p["partition"])
                for t in await self._describe()
                for p in t["partitions"]
                if p["leader"] < 0 or sorted(p["isr"]) != sorted(p["replicas"])
            ]
            if not lagging:
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{len(lagging)} partitions not fully in sync after {timeout:.0f} s, "
                    f"e.g. {lagging[:3]}"
                )
            await asyncio.sleep(0.2)


class _PortTaken(Exception):
    """Someone grabbed a port between our probe and Kafka's bind: retry with new ports."""


def _cluster_id() -> str:
    while True:  # like Kafka's Uuid.randomUuid: a leading '-' would read as an option
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _client_cert(tls: Path, name: str) -> ClientCert:
    return ClientCert(tls / f"{name}.pem", tls / f"{name}.key", tls / f"{name}.enc.key")


def _secured_properties(
    log_dir: Path, tls: Path, ssl_port: int, controller_port: int, *, port: int
) -> str:
    """The plaintext node's settings with its listeners replaced: SASL_SSL (SCRAM) for
    clients, SSL with required client certificates for clients and the broker itself, and the
    controller's over mutual TLS too; the StandardAuthorizer denies what no ACL allows."""
    base = _server_properties(log_dir, port, controller_port)
    kept = [
        line
        for line in base.splitlines()
        if not line.startswith(
            (
                "listeners=",
                "advertised.listeners=",
                "inter.broker.listener.name=",
                "listener.security.protocol.map=",
            )
        )
    ]
    jaas = f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config"
    module = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return (
        "\n".join(kept)
        + f"""
listeners=SASL_SSL://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_SSL://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}
inter.broker.listener.name=SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL
ssl.keystore.type=PEM
ssl.keystore.location={tls / "broker-keystore.pem"}
ssl.truststore.type=PEM
ssl.truststore.location={tls / "ca.pem"}
listener.name.ssl.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT
sasl.enabled.mechanisms={SCRAM_MECHANISM}
{jaas}={module}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{BROKER_PRINCIPAL};User:admin
"""
    )


def _server_properties(
    log_dir: Path,
    port: int,
    controller_port: int,
    *,
    node_id: int = 1,
    voters: str | None = None,
    replicas: int = 1,
) -> str:
    """A combined broker+controller node. Alone by default; in a quorum, `voters` lists every
    controller (``id@host:port,...``) and `replicas` is the default replication factor of every
    topic, internal ones included, with ``min.insync.replicas`` one less."""
    # Static voters (not --standalone): the controller ports live only in this file, so a kept
    # data dir can be restarted on new ports. A short broker session: after a kill, the restarted
    # broker's registration is refused until the old session expires (9 s by default), and a
    # dead or frozen node is fenced (its leaderships moved) that much sooner.
    isr = max(1, replicas - 1)
    return f"""process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters or f"{node_id}@127.0.0.1:{controller_port}"}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={log_dir}
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={isr}
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={isr}
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={isr}
share.coordinator.state.topic.num.partitions=10
num.recovery.threads.per.data.dir=1
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
"""


_LOG4J = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = FILE
"""


# Secured mode: every authorization decision (DEBUG: allowed ones too) in its own file, so a
# test can tell exactly which operations a principal used or was denied.
_AUTHORIZER_LOG4J = """appender.authorizer.type = File
appender.authorizer.name = AUTHORIZER
appender.authorizer.fileName = {log}
appender.authorizer.layout.type = PatternLayout
appender.authorizer.layout.pattern = [%d] %p %m%n
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = DEBUG
logger.authorizer.additivity = false
logger.authorizer.appenderRef.file.ref = AUTHORIZER
"""


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.broker``: run a local broker (or cluster) until Ctrl-C / SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.broker",
        description="Run a local Kafka: one node, or a KRaft quorum of several (--nodes 3).",
    )
    parser.add_argument("--kafka-version", default=KAFKA_VERSION)
    parser.add_argument(
        "--heap", help="JVM max heap of each node (default 512m; 256m with --nodes)"
    )
    parser.add_argument(
        "--data-dir",
        help="keep data here across runs (default: a fresh temporary directory, removed on stop)",
    )
    parser.add_argument(
        "--secured",
        action="store_true",
        help="SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners, a CA of its own, ACLs enforced",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        metavar="N",
        help="combined broker+controller nodes; above 1, topics default to N replicas and "
        "min.insync.replicas N-1 (default 1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="N",
        help="client port (the SASL_SSL one with --secured, node 1's with --nodes; "
        "default: a free port)",
    )
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error(f"--nodes must be at least 1, not {args.nodes}")
    if args.nodes > 1 and args.secured:
        parser.error("--secured runs one node: it cannot be combined with --nodes")
    kafka: LocalKafka | LocalCluster
    if args.nodes > 1:
        kafka = LocalCluster(
            args.nodes,
            args.kafka_version,
            heap=args.heap or "256m",
            data_dir=args.data_dir,
            port=args.port,
        )
    else:
        kafka = LocalKafka(
            args.kafka_version,
            heap=args.heap or "512m",
            data_dir=args.data_dir,
            secured=args.secured,
            port=args.port,
        )
    # Both signals stop cleanly. SIGINT is set explicitly: a process started in the background
    # by a non-interactive shell inherits SIGINT ignored, and Ctrl-C / kill -INT must still work.
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in stops}
    try:
        bootstrap = kafka.start()
        if isinstance(kafka, LocalCluster):
            return _serve_cluster(kafka, args.kafka_version, bootstrap)
        print(
            f"Kafka {args.kafka_version} ready at {bootstrap} (data in {kafka.data_dir}). "
            "Ctrl-C to stop.",
            flush=True,
        )
        if args.secured:
            sec = kafka.security
            tls = sec.ca_file.parent
            print(
                f"  SASL_SSL ({sec.mechanism}): {sec.sasl_bootstrap}\n"
                f"  SSL (client certificates): {sec.ssl_bootstrap}\n"
                f"  CA: {sec.ca_file}\n"
                f"  users: {', '.join(sec.passwords)} (admin is a super user); their passwords "
                f"are in {tls / 'users.json'}, their certificates and keys are "
                f"{tls}/<user>.pem and .key",
                flush=True,
            )
        while kafka.running:
            time.sleep(0.5)
        data = kafka.data_dir
        tail = _read_tail(data / "kafka.out", data / "server.log") if data else "(no log)"
        print(f"error: Kafka exited unexpectedly. Log tail:\n{tail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping Kafka...", file=sys.stderr, flush=True)
        return 0
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        kafka.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_cluster(cluster: LocalCluster, version: str, bootstrap: str) -> int:
    """Print the nodes, then run until every node has exited: a node killed by hand (to try a
    fault) is reported, and the others go on."""
    print(
        f"Kafka {version} cluster of {len(cluster.node_ids)} nodes ready at {bootstrap} "
        f"(data in {cluster.data_dir}). Ctrl-C to stop.",
        flush=True,
    )
    for node in cluster.node_ids:
        print(
            f"  node {node}: {cluster.address(node)}, pid {cluster.pid(node)}, "
            f"log {cluster.log_file(node)}",
            flush=True,
        )
    reported: set[int] = set()
    while True:
        down = {node for node in cluster.node_ids if not cluster.running(node)}
        for node in sorted(down - reported):
            print(f"node {node} exited", file=sys.stderr, flush=True)
        reported = down
        if len(down) == len(cluster.node_ids):
            print("error: every node exited", file=sys.stderr)
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())

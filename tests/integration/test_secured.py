"""Against the secured broker (SASL_SSL with SCRAM-SHA-512, mutual TLS, deny by default): the
processor (each topology, and with --exactly-once), the ingress and redrive run end to end with
exactly the ACLs of docs/operations.md, read from its `kafka-acls` lines (one ACL fewer stops the
command at once, exit 2, naming what was refused); refused credentials (a SASL password, a client
certificate the broker does not trust, a broker certificate the client does not trust) stop every
command at once (exit 2) naming the mechanism and the user or the certificate, while a broker that
does not answer is still waited for; and no password ever reaches the logs.

The broker is this module's own (`LocalKafka(secured=True)`), whatever KAFKA_BOOTSTRAP_SERVERS
says. Test clients (topics, produce, drain) run as the super user `admin`: the conftest helpers
are pointed at the secured broker by `as_admin`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from pipeline.core import InputRecord, dead_letter
from pipeline.errors import UnknownFormat
from tools.acls import Acl, create_acls, documented
from tools.broker import LocalKafka, Security

from . import conftest as it
from .conftest import (
    ROOT,
    Spawn,
    Topics,
    check_dead_letters,
    check_outputs,
    corpus_records,
    corpus_stream,
    drain,
    expected,
    free_port,
    make_topics,
    plan,
    produce,
    run_args,
    wait_committed,
    wait_processed,
)
from .ingress_helpers import FORM, ingress_args, yunpian_push

pytestmark = [pytest.mark.anyio]

#: Refused credentials must stop a command within this (no retry for the start-up timeout).
FAST_EXIT_S = 10.0


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalKafka]:
    with LocalKafka(secured=True) as kafka:
        yield kafka


@pytest.fixture
def security(secured: LocalKafka) -> Security:
    return secured.security


def client_options(security: Security, user: str = "admin") -> dict[str, Any]:
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": security.mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": security.passwords[user],
        "ssl_context": create_ssl_context(cafile=str(security.ca_file)),
    }


@pytest.fixture
def as_admin(security: Security, monkeypatch: pytest.MonkeyPatch) -> str:
    """The secured broker's SASL_SSL bootstrap; the conftest helpers connect to it as admin."""
    options = client_options(security)
    for name, cls in (
        ("AIOKafkaConsumer", AIOKafkaConsumer),
        ("AIOKafkaProducer", AIOKafkaProducer),
        ("AIOKafkaAdminClient", AIOKafkaAdminClient),
    ):
        monkeypatch.setattr(it, name, functools.partial(cls, **options))
    return security.sasl_bootstrap


#: The operator's instructions: docs/operations.md, "Least privilege". Each block of `kafka-acls`
#: lines is found by the start of the line introducing it; the tests grant exactly those lines.
DOCS = ROOT / "docs" / "operations.md"
PARTITIONED = ("Topology `partitioned`",)
SINGLE = ("Topology `single`",)
EXACTLY_ONCE = (*PARTITIONED, "`--exactly-once` (partitioned)")
INGRESS = ("`ingress` (produces",)
REDRIVE = ("`redrive` (reads",)


def documented_acls(blocks: tuple[str, ...], topics: Topics, user: str) -> list[Acl]:
    """The bindings of the documented lines of `blocks`, for `user`, with the test's topics and
    group for RAW, OUT, DLQ and GROUP."""
    text = DOCS.read_text(encoding="utf-8")
    names = {"RAW": topics.raw, "OUT": topics.out, "DLQ": topics.dlq, "GROUP": topics.group}
    acls = [
        acl
        for block in blocks
        for line in documented(text, block)
        for acl in Acl.parse(line, user, names)
    ]
    assert acls, blocks
    return acls


async def grant(security: Security, acls: list[Acl]) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=security.sasl_bootstrap, **client_options(security)
    )
    await admin.start()
    try:
        await create_acls(admin, acls)
    finally:
        await admin.close()


def sasl_env(security: Security, user: str, **extra: str) -> dict[str, str]:
    return {
        "PIPELINE_SECURITY_PROTOCOL": "SASL_SSL",
        "PIPELINE_SASL_MECHANISM": security.mechanism,
        "PIPELINE_SASL_USERNAME": user,
        "PIPELINE_SSL_CAFILE": str(security.ca_file),
        **extra,
    }


def decisions(log: Path, user: str, since: int) -> list[str]:
    """`operation resource` of each authorization of `user` after byte `since` of the
    broker's authorizer log, prefixed `Denied` where refused."""
    text = log.read_bytes()[since:].decode()
    found = re.findall(
        rf"Principal = User:{user} is (Allowed|Denied) operation = (\w+) from host = \S+ "
        r"on resource = (\S+)",
        text,
    )
    return [f"{'Denied ' if verdict == 'Denied' else ''}{op} {res}" for verdict, op, res in found]


async def test_run_end_to_end_with_exactly_its_acls(
    secured: LocalKafka, security: Security, as_admin: str, spawn: Spawn, tmp_path: Path
) -> None:
    bootstrap = as_admin
    topics = await make_topics(bootstrap, "secured", raw=2, out=3)
    bad = InputRecord("", 0, 0, int(time.time() * 1000), [("provider", b"uspeedo")], b"{not json")
    records = plan([*corpus_records(5, 1500), bad], topics.raw, 2)
    want = expected(records)
    assert want.outputs and want.dead_letters  # the dead-letter topic is written too
    await grant(security, documented_acls(PARTITIONED, topics, "processor"))
    password = security.passwords["processor"]
    secret = tmp_path / "sasl-password"
    secret.write_text(password + "\n")
    env = sasl_env(security, "processor", PIPELINE_SASL_PASSWORD_FILE=str(secret))
    assert secured.authorizer_log is not None
    since = secured.authorizer_log.stat().st_size

    # Two runs: the second restores its windows from the output topic (READ on it).
    half = len(records) // 2
    await produce(bootstrap, records[:half])
    proc = spawn(run_args(bootstrap, topics), env)
    await wait_processed(bootstrap, topics, procs=[proc])
    assert await proc.stop() == 0
    await produce(bootstrap, records[half:])
    again = spawn(run_args(bootstrap, topics), env)
    await wait_processed(bootstrap, topics, procs=[again])
    denied = [d for d in decisions(secured.authorizer_log, "processor", since) if "Denied" in d]
    assert not denied, sorted(set(denied))
    assert await again.stop() == 0
    assert not proc.crashes() and not again.crashes(), proc.text()[-3000:]

    check_outputs(await drain(bootstrap, topics.out), want.outputs, 3)
    check_dead_letters(await drain(bootstrap, topics.dlq), want.dead_letters)
    for p in (proc, again):  # the password from the file was never logged
        assert password not in p.text()
    used = decisions(secured.authorizer_log, "processor", since)
    assert not [d for d in used if d.startswith("Denied")], sorted(set(used))
    assert f"READ Topic:LITERAL:{topics.out}" in used  # the second run's restore
    assert f"CREATE Topic:LITERAL:{topics.out}.by-message" in used
    assert f"CREATE Topic:LITERAL:{topics.out}.messages" in used


#: The processor's variants whose ACLs the docs list besides the default: (user, the docs'
#: blocks, flags). Each runs as a user of its own (the secured broker makes one for each).
VARIANTS = {
    "single": ("single", SINGLE, ["--topology", "single"]),
    "exactly-once": ("exactly-once", EXACTLY_ONCE, ["--exactly-once"]),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_run_variant_end_to_end_with_exactly_its_acls(
    secured: LocalKafka, security: Security, as_admin: str, spawn: Spawn, variant: str
) -> None:
    user, blocks, flags = VARIANTS[variant]
    bootstrap = as_admin
    topics = await make_topics(bootstrap, f"secured-{variant}", raw=2, out=2, dlq=1)
    bad = InputRecord("", 0, 0, int(time.time() * 1000), [("provider", b"uspeedo")], b"{not json")
    records = plan([*corpus_records(6, 300), bad], topics.raw, 2)
    want = expected(records)
    assert want.outputs and want.dead_letters
    await grant(security, documented_acls(blocks, topics, user))
    await produce(bootstrap, records)
    env = sasl_env(security, user, PIPELINE_SASL_PASSWORD=security.passwords[user])
    assert secured.authorizer_log is not None
    since = secured.authorizer_log.stat().st_size
    proc = spawn(run_args(bootstrap, topics, extra=flags), env)
    output = None if variant == "single" else topics.out  # no dedupe stage under single
    await wait_committed(bootstrap, topics.group, topics.raw, output=output, procs=[proc])
    assert await proc.stop() == 0
    assert not proc.crashes(), proc.text()[-3000:]

    # Complete once committed (above): no need to wait for stragglers.
    got = await drain(bootstrap, topics.out, idle_s=0.3, isolation_level="read_committed")
    check_outputs(got, want.outputs, 2)
    check_dead_letters(await drain(bootstrap, topics.dlq, idle_s=0.3), want.dead_letters)
    used = decisions(secured.authorizer_log, user, since)
    assert not [d for d in used if d.startswith("Denied")], sorted(set(used))
    assert f"READ Group:LITERAL:{topics.group}" in used
    # Each output partition's writer under its own id (DESCRIBE of them is implied).
    written = sorted({d for d in used if d.startswith("WRITE TransactionalId:")})
    ids = [f"{topics.group}.dedupe.{topics.out}.{p}" for p in (0, 1)]
    want_written = [f"WRITE TransactionalId:LITERAL:{i}" for i in ids]
    assert written == (want_written if variant == "exactly-once" else []), written


@pytest.mark.parametrize(
    ("variant", "refused"),
    [("exactly-once", "transactional-id"), ("single", "group")],
    ids=["exactly-once-without-transactional-id", "single-without-group"],
)
async def test_run_variant_missing_one_acl_exits_2_naming_it(
    security: Security, as_admin: str, variant: str, refused: str
) -> None:
    user, blocks, flags = VARIANTS[variant]
    bootstrap = as_admin
    topics = await make_topics(bootstrap, f"secured-{variant}-less", raw=1, out=1, dlq=1)
    acls = documented_acls(blocks, topics, user)
    kept = [acl for acl in acls if acl.resource_type != refused]
    assert len(kept) == len(acls) - 1, acls
    await grant(security, kept)
    env = sasl_env(security, user, PIPELINE_SASL_PASSWORD=security.passwords[user])
    code, stderr, took = await asyncio.to_thread(
        run_cli, run_args(bootstrap, topics, extra=flags), env
    )
    assert code == 2, stderr
    assert took < FAST_EXIT_S, (took, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(
        f"error: not authorized to Write transactional id '{topics.group}.dedupe.{topics.out}.0'"
        if refused == "transactional-id"
        else f"error: not authorized to Read group {topics.group!r}"
    ), stderr
    assert "Traceback" not in stderr, stderr


def command(name: str, bootstrap: str) -> list[str]:
    args = {
        "run": ["run", "--state-dir", ""],
        "ingress": ["ingress", "--port", "0"],
        "redrive": ["redrive", "--error-class", "MalformedBody"],
    }[name]
    return [*args, "--bootstrap-servers", bootstrap, "--startup-timeout-s", "60"]


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIPELINE_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }


def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        env={**clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.parametrize("name", ["run", "ingress", "redrive"])
def test_wrong_password_stops_at_once(security: Security, name: str) -> None:
    env = sasl_env(security, "processor", PIPELINE_SASL_PASSWORD="not-the-password")
    code, stderr, took = run_cli(command(name, security.sasl_bootstrap), env)
    assert code == 2, stderr
    assert took < FAST_EXIT_S, (took, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: authentication failed: SASL SCRAM-SHA-512 as user 'processor' was refused "
        f"by the broker at {security.sasl_bootstrap}"
    ], stderr
    assert "not-the-password" not in stderr


def test_password_flag_is_warned_about_and_never_logged(security: Security) -> None:
    code, stderr, _ = run_cli(
        [*command("run", security.sasl_bootstrap), "--sasl-password", "flag-secret-1234"],
        sasl_env(security, "nobody"),
    )
    assert code == 2, stderr
    assert "a secret given as a flag is visible" in stderr
    assert "flag-secret-1234" not in stderr


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA of the test's own: it signed neither the broker's certificate nor any client's."""
    folder = tmp_path_factory.mktemp("other-ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=another CA", "-keyout", "ca.key", "-out", "ca.pem"],
        cwd=folder, check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return folder / "ca.pem"


@pytest.mark.parametrize("name", ["run", "ingress", "redrive"])
@pytest.mark.parametrize("untrusted", ["client", "broker"])
def test_mutual_tls_refused_stops_at_once(
    security: Security, other_ca: Path, name: str, untrusted: str
) -> None:
    """A client certificate of another CA (`security.foreign`), or a CA file that did not sign
    the broker's certificate: no retry, one line naming TLS and the file to fix."""
    cert = security.foreign if untrusted == "client" else security.certs["processor"]
    cafile = other_ca if untrusted == "broker" else security.ca_file
    args = [
        *command(name, security.ssl_bootstrap),
        *("--security-protocol", "SSL", "--ssl-cafile", str(cafile)),
        *("--ssl-certfile", str(cert.cert), "--ssl-keyfile", str(cert.key)),
    ]
    code, stderr, took = run_cli(args, {})
    assert code == 2, stderr
    assert took < FAST_EXIT_S, (took, stderr)
    where = security.ssl_bootstrap
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(
        f"error: authentication failed: TLS with client certificate {cert.cert} was refused by "
        f"the broker at {where} (SSLV3_ALERT_"
        if untrusted == "client"
        else f"error: authentication failed: TLS could not verify the certificate of the broker "
        f"at {where} with {other_ca} (ssl_cafile): "
    ), stderr
    assert "Traceback" not in stderr, stderr


def test_unreachable_broker_is_still_waited_for(security: Security) -> None:
    """Credentials set (SASL or mutual TLS) do not turn a broker that does not answer into a
    refusal: every command waits for --startup-timeout-s, then exits 1."""
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    cert = security.certs["processor"]
    tls = ["--ssl-cafile", str(security.ca_file)]
    protocols: dict[str, tuple[list[str], dict[str, str]]] = {
        "SSL": (
            [
                *("--security-protocol", "SSL", *tls),
                *("--ssl-certfile", str(cert.cert), "--ssl-keyfile", str(cert.key)),
            ],
            {},
        ),
        "SASL_SSL": (
            [],
            sasl_env(security, "processor", PIPELINE_SASL_PASSWORD=security.passwords["processor"]),
        ),
    }
    cases = [(name, protocol) for name in ("run", "ingress", "redrive") for protocol in protocols]

    def attempt(case: tuple[str, str]) -> tuple[int, str, float]:
        args, env = protocols[case[1]]
        return run_cli([*command(case[0], bootstrap), *args, "--startup-timeout-s", "2"], env)

    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
        results = dict(zip(cases, pool.map(attempt, cases), strict=True))
    for case, (code, stderr, took) in results.items():
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert code == 1, (case, stderr)
        assert len(errors) == 1, (case, stderr)
        assert errors[0].startswith(f"error: Kafka at {bootstrap} not reachable after 2s"), case
        assert took >= 2, (case, took)
        assert "waiting for Kafka" in stderr, (case, stderr)


async def test_mutual_tls_with_an_encrypted_key(
    security: Security, as_admin: str, spawn: Spawn, tmp_path: Path
) -> None:
    bootstrap = as_admin
    topics, records, want = await corpus_stream(bootstrap, "mtls", 6, 200, raw=1, out=2)
    await grant(security, documented_acls(PARTITIONED, topics, "ingress"))  # CN=ingress
    await produce(bootstrap, records)
    key_password = tmp_path / "key-password"
    key_password.write_text(security.key_password + "\n")
    cert = security.certs["ingress"]
    proc = spawn(
        run_args(security.ssl_bootstrap, topics),
        {
            "PIPELINE_SECURITY_PROTOCOL": "SSL",
            "PIPELINE_SSL_CAFILE": str(security.ca_file),
            "PIPELINE_SSL_CERTFILE": str(cert.cert),
            "PIPELINE_SSL_KEYFILE": str(cert.encrypted_key),
            "PIPELINE_SSL_PASSWORD_FILE": str(key_password),
        },
    )
    await wait_processed(bootstrap, topics, procs=[proc])
    assert await proc.stop() == 0
    check_outputs(await drain(bootstrap, topics.out), want.outputs, 2)
    assert security.key_password not in proc.text()


def test_unreadable_password_file_is_a_setting_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    code, stderr, _ = run_cli(
        ["run", "--bootstrap-servers", "127.0.0.1:9", "--sasl-password-file", str(missing)], {}
    )
    assert code == 2, stderr
    assert f"sasl_password_file (from flag --sasl-password-file): cannot read {missing}" in stderr


async def test_ingress_with_exactly_its_acls(
    secured: LocalKafka, security: Security, as_admin: str, spawn: Spawn
) -> None:
    bootstrap = as_admin
    topics = await make_topics(bootstrap, "secured-ingress", raw=2, out=1, dlq=1)
    await grant(security, documented_acls(INGRESS, topics, "ingress"))
    env = sasl_env(security, "ingress", PIPELINE_SASL_PASSWORD=security.passwords["ingress"])
    assert secured.authorizer_log is not None
    since = secured.authorizer_log.stat().st_size
    proc = spawn(ingress_args(bootstrap, topics.raw), env)
    line = await proc.wait_log("ingress listening", timeout=60)
    body = yunpian_push(4242)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{line['port']}") as client:
        response = await client.post(
            "/v1/yunpian/push", content=body, headers={"content-type": FORM.decode()}
        )
    assert (response.status_code, response.content) == (200, b"SUCCESS")
    assert await proc.stop() == 0
    assert not proc.crashes(), proc.text()[-3000:]
    (record,) = await drain(bootstrap, topics.raw, count=1)
    assert record.value == body
    assert dict(record.headers)["provider"] == b"yunpian"
    used = decisions(secured.authorizer_log, "ingress", since)
    assert not [d for d in used if d.startswith("Denied")], sorted(set(used))
    assert f"WRITE Topic:LITERAL:{topics.raw}" in used
    assert security.passwords["ingress"] not in proc.text()


async def write_dead_letter(bootstrap: str, topics: Topics) -> InputRecord:
    """One dead letter in the processor's exact envelope (error.class, error.message,
    source.topic, source.partition, source.offset), written as admin; the original record."""
    original = InputRecord(
        topics.raw, 0, 0, int(time.time() * 1000), [("provider", b"uspeedo")], b"{not json"
    )
    letter = dead_letter(original, UnknownFormat("body shape unknown"))
    assert [k for k, _ in letter.headers][-5:] == [
        "error.class",
        "error.message",
        "source.topic",
        "source.partition",
        "source.offset",
    ]
    producer = it.new_producer(bootstrap)  # as admin (`as_admin`)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.dlq,
            letter.value,
            key=letter.key,
            headers=letter.headers,
            timestamp_ms=letter.timestamp_ms,
        )
    finally:
        await producer.stop()
    return original


def redrive_args(bootstrap: str, topics: Topics) -> list[str]:
    return [
        "redrive",
        "--bootstrap-servers",
        bootstrap,
        "--input-topics",
        topics.raw,
        "--dead-letter-topic",
        topics.dlq,
        "--startup-timeout-s",
        "60",
    ]


async def test_redrive_with_exactly_its_acls(
    secured: LocalKafka, security: Security, as_admin: str
) -> None:
    bootstrap = as_admin
    topics = await make_topics(bootstrap, "secured-redrive", raw=1, out=1, dlq=1)
    original = await write_dead_letter(bootstrap, topics)
    await grant(security, documented_acls(REDRIVE, topics, "redrive"))
    env = sasl_env(security, "redrive", PIPELINE_SASL_PASSWORD=security.passwords["redrive"])
    assert secured.authorizer_log is not None
    since = secured.authorizer_log.stat().st_size
    code, stderr, _ = await asyncio.to_thread(run_cli, redrive_args(bootstrap, topics), env)
    assert code == 0, stderr
    assert (
        f"redrive: read 1 dead letters from {topics.dlq!r}, selected 1, redriven 1 to "
        f"{topics.raw!r}" in stderr
    ), stderr
    (copy,) = await drain(bootstrap, topics.raw, count=1)
    assert copy.value == original.value
    assert list(copy.headers) == [
        *original.headers,
        ("redriven.from", f"{topics.dlq}:0:0".encode()),
    ]
    used = decisions(secured.authorizer_log, "redrive", since)
    assert not [d for d in used if d.startswith("Denied")], sorted(set(used))
    assert f"READ Topic:LITERAL:{topics.dlq}" in used
    assert f"WRITE Topic:LITERAL:{topics.raw}" in used
    assert security.passwords["redrive"] not in stderr


@pytest.mark.parametrize("missing", [0, 1], ids=["no-read-on-dlq", "no-write-on-raw"])
async def test_redrive_missing_one_acl_exits_2_naming_it(
    security: Security, as_admin: str, missing: int
) -> None:
    bootstrap = as_admin
    topics = await make_topics(bootstrap, "secured-redrive-less", raw=1, out=1, dlq=1)
    await write_dead_letter(bootstrap, topics)
    acls = documented_acls(REDRIVE, topics, "redrive")
    removed = acls.pop(missing)
    await grant(security, acls)
    env = sasl_env(security, "redrive", PIPELINE_SASL_PASSWORD=security.passwords["redrive"])
    code, stderr, took = await asyncio.to_thread(run_cli, redrive_args(bootstrap, topics), env)
    assert code == 2, stderr
    assert took < FAST_EXIT_S, (took, stderr)
    role = {topics.dlq: "dead-letter (--dead-letter-topic)", topics.raw: "target"}[removed.name]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"error: not authorized to Describe {role}"), stderr
    assert errors[0].endswith(f"topic {removed.name!r}"), stderr
    assert await drain(bootstrap, topics.raw, idle_s=0.3) == []  # nothing copied


def test_ingress_without_its_acl_exits_2_naming_it(security: Security) -> None:
    topic = "it-secured-ingress-unwritable"  # refused before the topic is looked at
    env = sasl_env(security, "nobody", PIPELINE_SASL_PASSWORD=security.passwords["nobody"])
    code, stderr, took = run_cli(ingress_args(security.sasl_bootstrap, topic), env)
    assert code == 2, stderr
    assert took < FAST_EXIT_S, (took, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: not authorized to Write raw (--raw-topic) topic {topic!r}: the idempotent "
        "producer's id (InitProducerId) was refused"
    ], stderr
    assert "Traceback" not in stderr and "Unclosed" not in stderr, stderr

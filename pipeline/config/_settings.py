"""Settings for `run`: flags win over `PIPELINE_*` environment variables, which win over a TOML
file, which wins over the defaults here. Every source is validated by one msgspec conversion, so a
bad value stops the program with a message that names the key and where it came from."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

from ..core._batch import CoreConfig, parse_routes
from ..core.normalise._errors import DEFAULT_MAX_BODY_BYTES, DEFAULT_RECORD_MAX_BYTES, MalformedBody
from ..core.normalise._timefmt import zone

Positive = Annotated[int, msgspec.Meta(ge=1)]
_log = logging.getLogger("pipeline.config")
#: The value shape of Kubernetes' service-link variables (`<SERVICE>_PORT=tcp://ip:port`).
_SERVICE_LINK: Final = re.compile(r"(tcp|udp|sctp)://")


class ConfigError(ValueError):
    """A bad flag, environment variable or config-file value; the message names it."""


class KafkaSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What every Kafka-facing command shares (`run`, `ingress`): connection and producer."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # zstd: aiokafka compresses lz4 at level 9, several times the CPU of zstd's level 3.
    compression: Literal["lz4", "zstd", "gzip", "none"] = "zstd"
    startup_timeout_s: Positive = 60
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(KafkaSettings, kw_only=True, forbid_unknown_fields=True):
    # Kafka
    input_topics: list[str] = msgspec.field(default_factory=lambda: ["sms-receipts-raw"])
    input_pattern: str | None = None
    output_topic: str = "sms-receipts"
    dead_letter_topic: str = "sms-receipts-dlq"
    group_id: str = "sms-receipt-pipeline"
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    # Batches are built whole (create_batch/send_batch); lingering would only add latency.
    linger_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    batch_max_records: Positive = 2000
    # Batch n's acks arrive while batch n + 1 is processed; commits stay in batch order.
    max_batches_in_flight: Positive = 2
    # Bounds every stop: the batches in hand, their commits and closing the clients.
    shutdown_timeout_s: Positive = 30
    fetch_max_wait_ms: Annotated[int, msgspec.Meta(ge=0)] = 100
    # How long a crashed member keeps its partitions before the group reassigns them.
    session_timeout_ms: Annotated[int, msgspec.Meta(ge=6000, le=300000)] = 10_000
    # The core
    window_max_messages: Positive = 5_000_000
    window_ttl_s: Positive = 86_400
    clock_skew_tolerance_s: Positive = 300
    max_body_bytes: Positive = DEFAULT_MAX_BODY_BYTES
    dead_letter_max_bytes: Positive = DEFAULT_RECORD_MAX_BYTES
    time_zones: dict[str, str] = msgspec.field(default_factory=dict)
    topic_map: dict[str, str] = msgspec.field(default_factory=dict)
    # Topology (DESIGN.md section 5)
    topology: Literal["partitioned", "single"] = "partitioned"
    repartition_replication_factor: Annotated[int, msgspec.Meta(ge=0, le=32)] = 0
    repartition_retention_s: Positive = 86_400
    # Process
    workers: Positive = 1
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    metrics_host: str = "127.0.0.1"
    liveness_timeout_s: Positive = 120
    # Window snapshots (pipeline/state/_snapshot.py); '' turns them off.
    state_dir: str = ".pipeline-state"
    snapshot_interval_s: Positive = 60
    # Topology partitioned: dedupe writes and commits in one transaction per partition.
    exactly_once: bool = False
    # Embedded mode (no Kafka)
    source: str | None = None
    to: str | None = None
    dead_letter: str | None = None


HELP: Final[dict[str, str]] = {
    "bootstrap_servers": "Kafka bootstrap servers (also KAFKA_BOOTSTRAP_SERVERS)",
    "input_topics": "raw input topic(s), comma-separated or repeated",
    "input_pattern": "regex of input topics (instead of --input-topics)",
    "output_topic": "topic for canonical events (also the dedupe log read on start)",
    "dead_letter_topic": "topic for records that cannot be decoded",
    "group_id": "consumer group id",
    "isolation_level": "read_committed or read_uncommitted",
    "security_protocol": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    "sasl_mechanism": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    "sasl_username": "SASL user name",
    "sasl_password": "SASL password (prefer PIPELINE_SASL_PASSWORD)",
    "ssl_cafile": "CA bundle for SSL",
    "ssl_certfile": "client certificate for SSL",
    "ssl_keyfile": "client key for SSL",
    "compression": "producer compression: lz4, zstd, gzip or none",
    "linger_ms": "producer linger in ms",
    "batch_max_records": "records per consumer batch (getmany max_records)",
    "max_batches_in_flight": "batches processed ahead of their acknowledgements: batch n+1 is "
    "decoded and sent while batch n's acks are in flight; offsets are committed in batch order, "
    "each once its batch is acknowledged (1: one batch at a time; --exactly-once: always 1)",
    "fetch_max_wait_ms": "longest wait for a consumer batch to fill, in ms",
    "startup_timeout_s": "how long to wait for the broker at start, in s",
    "shutdown_timeout_s": "longest a stop (SIGTERM/SIGINT) waits for the batches in hand and the "
    "broker, in s; giving up leaves them uncommitted and exits 3",
    "session_timeout_ms": "consumer group session timeout: how soon a crashed member's "
    "partitions move to the others (the broker's group.min.session.timeout.ms bounds it)",
    "window_max_messages": "dedupe window: most messages held",
    "window_ttl_s": "dedupe window: longest a message is held, in s of record time",
    "clock_skew_tolerance_s": "records stamped more than this many s ahead of the wall clock "
    "do not move the window's clock (counted as clock skew)",
    "max_body_bytes": "bodies larger than this are dead-lettered unparsed",
    "dead_letter_max_bytes": "the dead-letter topic's record limit in bytes (key, value, headers "
    "and framing): a dead letter's value is cut, and oversize original headers dropped, to fit",
    "time_zones": "zones for naive times: provider[/account]=Zone, comma-separated or repeated",
    "topic_map": "provider of unlabelled topics: topic=provider[.endpoint], comma-separated",
    "topology": "partitioned (route + dedupe stages, any number of instances) or single "
    "(one stage, one window, exactly one instance: refuses to share its group)",
    "repartition_replication_factor": "replicas of the repartition topic <output>.by-message "
    "when it is created (0: as many as the output topic)",
    "repartition_retention_s": "retention of the repartition topic when it is created",
    "workers": "processes in the consumer group",
    "metrics_port": "serve Prometheus /metrics, /livez and /readyz on this port (0: any free "
    "port); with --workers, one endpoint for all of them",
    "metrics_host": "address the metrics endpoint binds (0.0.0.0: every interface, e.g. in a "
    "container)",
    "liveness_timeout_s": "/livez fails when a loop made no progress (a batch, or a poll that "
    "found nothing) for this long, in s",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "state_dir": "directory for dedupe window snapshots (relative: under the working "
    "directory; '' turns them off): a restart reads only the output written after them",
    "snapshot_interval_s": "snapshot the dedupe windows at most this often, in s (also on "
    "revocation and shutdown)",
    "exactly_once": "topology partitioned: the dedupe stage writes each batch and commits its "
    "offsets in one transaction per output partition, fencing a member that lost the partition "
    "(read the output read_committed)",
    "source": "embedded mode: kcat -J JSON lines, a directory of raw bodies, or - (stdin)",
    "to": "embedded mode: where events go as JSON lines (- for stdout)",
    "dead_letter": "embedded mode: dead-letter file (default: <to>.deadletter.jsonl, stderr for -)",
}
FLAG_NAMES: Final[dict[str, str]] = {"source": "--from", "to": "--to"}
S = TypeVar("S", bound=msgspec.Struct)
Fields = dict[str, msgspec.structs.FieldInfo]


@functools.cache
def _fields(settings_type: type[msgspec.Struct]) -> Fields:
    return {f.name: f for f in msgspec.structs.fields(settings_type)}


def _default(field: msgspec.structs.FieldInfo) -> Any:
    if field.default is msgspec.NODEFAULT:
        return field.default_factory() if callable(field.default_factory) else None
    return field.default


def _kind(field: msgspec.structs.FieldInfo) -> str:
    default = _default(field)
    return (
        "list" if isinstance(default, list) else "dict" if isinstance(default, dict) else "scalar"
    )


def _split_text(field: msgspec.structs.FieldInfo, text: str) -> Any:
    """Environment and flag text into the field's shape; numbers are converted by msgspec."""
    name, kind = field.name, _kind(field)
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "dict":
        result = {}
        for item in filter(None, (i.strip() for i in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"{name}: expected key=value, got {item!r}")
            result[key.strip()] = value.strip()
        return result
    return text


def add_arguments(
    parser: argparse.ArgumentParser,
    settings_type: type[msgspec.Struct] = Settings,
    help_text: Mapping[str, str] = HELP,
    only: Collection[str] = (),
) -> None:
    """One flag per setting of `settings_type` (or of those in `only`), each documented with its
    default."""
    parser.add_argument(
        "--config", metavar="FILE", help="TOML file of settings (keys as below, with _)"
    )
    for name, field in _fields(settings_type).items():
        if only and name not in only:
            continue
        flag = FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        default = _default(field)
        text = f"{help_text[name]} (default: {default!r}; env PIPELINE_{name.upper()})"
        if isinstance(default, bool):  # a switch: the flag turns it on
            parser.add_argument(
                flag, dest=name, action="store_true", default=argparse.SUPPRESS, help=text
            )
            continue
        action = "append" if _kind(field) != "scalar" else "store"
        parser.add_argument(
            flag,
            dest=name,
            action=action,
            default=argparse.SUPPRESS,
            metavar=name.upper(),
            help=text,
        )


def load(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    settings = load_settings(Settings, flags, environ)
    if settings.exactly_once and settings.topology == "single":
        # Accepting it would promise what `single` does not do: it writes without transactions.
        raise ConfigError(
            "invalid setting exactly_once: needs topology partitioned (topology single "
            "writes without transactions)"
        )
    return settings


def load_settings(
    settings_type: type[S], flags: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> S:
    """Merge defaults < TOML file < environment < flags, and validate."""
    fields = _fields(settings_type)
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    config_path = flags.get("config") or environ.get("PIPELINE_CONFIG")
    if config_path:
        try:
            with open(config_path, "rb") as fh:
                table = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"config file {config_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_path}: {exc}") from None
        for key, value in table.items():
            if key not in fields:
                raise ConfigError(f"config file {config_path}: unknown key {key!r}")
            merged[key], origin[key] = value, f"config file {config_path}"
    if "KAFKA_BOOTSTRAP_SERVERS" in environ:
        merged["bootstrap_servers"] = environ["KAFKA_BOOTSTRAP_SERVERS"]
        origin["bootstrap_servers"] = "env KAFKA_BOOTSTRAP_SERVERS"
    for key, text in environ.items():
        if key.startswith("PIPELINE_") and key != "PIPELINE_CONFIG":
            name = key[len("PIPELINE_") :].lower()
            if name not in fields:
                # Kubernetes injects PIPELINE_SERVICE_HOST, PIPELINE_PORT, ... for a Service
                # named `pipeline`: not ours to refuse.
                _log.warning("ignoring unknown environment variable %s", key)
                continue
            if _SERVICE_LINK.match(text):
                # ... and PIPELINE_PORT=tcp://10.0.0.7:8080 collides with the ingress's `port`.
                _log.warning("ignoring Kubernetes service link %s", key)
                continue
            merged[name], origin[name] = _split_text(fields[name], text), f"env {key}"
    for name, value in flags.items():
        if name == "config" or name not in fields:
            continue
        if isinstance(value, list):  # repeated flags, each possibly comma-separated
            parts = [_split_text(fields[name], v) for v in value]
            value = (
                {k: v for p in parts for k, v in p.items()}
                if _kind(fields[name]) == "dict"
                else [item for part in parts for item in part]
            )
        merged[name], origin[name] = (
            value,
            "flag " + FLAG_NAMES.get(name, "--" + name.replace("_", "-")),
        )
    try:
        return msgspec.convert(merged, settings_type, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = re.search(r"\$\.(\w+)", text)
        name = match.group(1) if match else ""
        where = f" (from {origin[name]})" if name in origin else ""
        raise ConfigError(f"invalid setting {name or '?'}{where}: {text}") from None


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    return load(vars(args), environ)


def as_flags(settings: Settings, only: Sequence[str] = ()) -> dict[str, Any]:
    """Settings as a plain dict (for handing to worker processes)."""
    data = msgspec.to_builtins(settings)
    assert isinstance(data, dict)
    return {k: v for k, v in data.items() if not only or k in only}


def core_config(settings: Settings) -> CoreConfig:
    try:
        routes = parse_routes(settings.topic_map)
    except ValueError as exc:
        raise ConfigError(f"invalid setting topic_map: {exc}") from None
    for key, name in settings.time_zones.items():
        try:
            zone(name)
        except MalformedBody:
            raise ConfigError(f"invalid setting time_zones: {key}={name}: unknown zone") from None
    return CoreConfig(
        max_body_bytes=settings.max_body_bytes,
        dead_letter_max_bytes=settings.dead_letter_max_bytes,
        topic_routes=routes,
        time_zones=settings.time_zones,
        clock_skew_tolerance_ms=settings.clock_skew_tolerance_s * 1000,
    )

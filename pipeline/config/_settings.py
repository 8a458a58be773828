"""Settings for `run`: flags win over `PIPELINE_*` environment variables, which win over a TOML
file, which wins over the defaults here. Every source is validated by one msgspec conversion, so a
bad value stops the program with a message that names the key and where it came from."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import ssl
import tomllib
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeVar

import msgspec

from schemas import PROVIDERS

from ..core import DEFAULT_MAX_BODY_BYTES, DEFAULT_RECORD_MAX_BYTES, CoreConfig, parse_routes
from ..core.normalise import zone
from ..errors import ConfigError, MalformedBody

_log = logging.getLogger("pipeline.config")
#: The value shape of Kubernetes' service-link variables (`<SERVICE>_PORT=tcp://ip:port`).
_SERVICE_LINK: Final = re.compile(r"(tcp|udp|sctp)://")


class KafkaSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What every Kafka-facing command shares (`run`, `ingress`): connection and producer.

    Each field's `Meta(description=...)` is its `--help` text (see `add_arguments`)."""

    bootstrap_servers: Annotated[
        str, msgspec.Meta(description="Kafka bootstrap servers (also KAFKA_BOOTSTRAP_SERVERS)")
    ] = "127.0.0.1:9092"
    security_protocol: Annotated[
        Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        msgspec.Meta(
            description="Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
        ),
    ] = "PLAINTEXT"
    sasl_mechanism: Annotated[
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None,
        msgspec.Meta(description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    ] = None
    sasl_username: Annotated[str | None, msgspec.Meta(description="SASL user name")] = None
    sasl_password: Annotated[
        str | None,
        msgspec.Meta(
            description="SASL password (prefer PIPELINE_SASL_PASSWORD or --sasl-password-file: "
            "a flag is visible in ps and is logged as a warning)"
        ),
    ] = None
    sasl_password_file: Annotated[
        str | None,
        msgspec.Meta(
            description="file holding the SASL password (its content, trailing newline "
            "stripped; instead of --sasl-password)"
        ),
    ] = None
    ssl_cafile: Annotated[str | None, msgspec.Meta(description="CA bundle for SSL")] = None
    ssl_certfile: Annotated[str | None, msgspec.Meta(description="client certificate for SSL")] = (
        None
    )
    ssl_keyfile: Annotated[str | None, msgspec.Meta(description="client key for SSL")] = None
    ssl_password: Annotated[
        str | None,
        msgspec.Meta(
            description="password of an encrypted --ssl-keyfile (prefer PIPELINE_SSL_PASSWORD "
            "or --ssl-password-file: a flag is visible in ps and is logged as a warning)"
        ),
    ] = None
    ssl_password_file: Annotated[
        str | None,
        msgspec.Meta(
            description="file holding the password of --ssl-keyfile (its content, trailing "
            "newline stripped; instead of --ssl-password)"
        ),
    ] = None
    compression: Annotated[
        Literal["lz4", "zstd", "gzip", "none"],
        msgspec.Meta(
            description="producer compression: lz4, zstd, gzip or none; zstd is the default: "
            "our records come out about half their lz4 size, for a little more CPU"
        ),
    ] = "zstd"
    compression_level: Annotated[
        int,
        msgspec.Meta(
            description="level of --compression, as Kafka's compression.<codec>.level: zstd "
            "-131072 to 22, lz4 1 to 17, gzip 1 to 9; at 1, zstd makes our records no larger "
            "than at Kafka's default 3, with a sixth to a quarter less CPU"
        ),
    ] = 1
    startup_timeout_s: Annotated[
        int, msgspec.Meta(ge=1, description="how long to wait for the broker at start, in s")
    ] = 60
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        msgspec.Meta(description="log level: DEBUG, INFO, WARNING or ERROR"),
    ] = "INFO"

    def __repr__(self) -> str:
        # Settings may be logged or shown in a traceback: never with a secret in them.
        shown = (
            f"{name}={'***' if name in SECRETS and value is not None else repr(value)}"
            for name, value in msgspec.structs.asdict(self).items()
        )
        return f"{type(self).__name__}({', '.join(shown)})"


#: Settings whose values are secrets: never logged, shown as *** in a repr.
SECRETS: Final = frozenset({"sasl_password", "ssl_password"})
#: Each secret's `<name>_file` setting, whose file holds it.
SECRET_FILES: Final = {f"{name}_file": name for name in SECRETS}


class Settings(KafkaSettings, kw_only=True, forbid_unknown_fields=True):
    """Everything `run` takes: the Kafka settings plus the processor's own."""

    # Kafka
    input_topics: Annotated[
        list[str], msgspec.Meta(description="raw input topic(s), comma-separated or repeated")
    ] = msgspec.field(default_factory=lambda: ["sms-receipts-raw"])
    input_pattern: Annotated[
        str | None, msgspec.Meta(description="regex of input topics (instead of --input-topics)")
    ] = None
    output_topic: Annotated[
        str,
        msgspec.Meta(description="topic for canonical events (also the dedupe log read on start)"),
    ] = "sms-receipts"
    dead_letter_topic: Annotated[
        str, msgspec.Meta(description="topic for records that cannot be decoded")
    ] = "sms-receipts-dlq"
    group_id: Annotated[str, msgspec.Meta(description="consumer group id")] = "sms-receipt-pipeline"
    isolation_level: Annotated[
        Literal["read_committed", "read_uncommitted"],
        msgspec.Meta(description="how the consumer reads: read_committed or read_uncommitted"),
    ] = "read_committed"
    linger_ms: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="producer linger in ms; batches are built whole (create_batch/"
            "send_batch), so any linger only adds latency",
        ),
    ] = 0
    batch_max_records: Annotated[
        int, msgspec.Meta(ge=1, description="records per consumer batch (getmany max_records)")
    ] = 2000
    max_batches_in_flight: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="batches processed ahead of their acknowledgements: batch n+1 is "
            "decoded and sent while batch n's acks are in flight; offsets are committed in "
            "batch order, each once its batch is acknowledged (1: one batch at a time; "
            "--exactly-once: always 1)",
        ),
    ] = 2
    shutdown_timeout_s: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="longest a stop (SIGTERM/SIGINT) takes, in s: it bounds finishing the "
            "batches in hand, committing them and closing the clients; giving up leaves them "
            "uncommitted and exits 3",
        ),
    ] = 30
    fetch_max_wait_ms: Annotated[
        int,
        msgspec.Meta(ge=0, description="longest wait for a consumer batch to fill, in ms"),
    ] = 100
    session_timeout_ms: Annotated[
        int,
        msgspec.Meta(
            ge=6000,
            le=300000,
            description="consumer group session timeout, in ms: how long a crashed member "
            "keeps its partitions before the group moves them to the others (the broker's "
            "group.min.session.timeout.ms bounds it)",
        ),
    ] = 10_000
    # The core
    window_max_messages: Annotated[
        int, msgspec.Meta(ge=1, description="dedupe window: most messages held")
    ] = 5_000_000
    window_ttl_s: Annotated[
        int,
        msgspec.Meta(
            ge=1, description="dedupe window: longest a message is held, in s of record time"
        ),
    ] = 86_400
    clock_skew_tolerance_s: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="records stamped more than this many s ahead of the wall clock do not "
            "move the window's clock (counted as clock skew)",
        ),
    ] = 300
    max_body_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=1, description="bodies larger than this many bytes are dead-lettered unparsed"
        ),
    ] = DEFAULT_MAX_BODY_BYTES
    dead_letter_max_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="the dead-letter topic's record limit in bytes (key, value, headers "
            "and framing): a dead letter's value is cut, and oversize original headers "
            "dropped, to fit",
        ),
    ] = DEFAULT_RECORD_MAX_BYTES
    time_zones: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="zones for naive times: provider[/account]=Zone, comma-separated or "
            "repeated"
        ),
    ] = msgspec.field(default_factory=dict)
    topic_map: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="provider of unlabelled topics: topic=provider[.endpoint], comma-separated"
        ),
    ] = msgspec.field(default_factory=dict)
    # Topology
    topology: Annotated[
        Literal["partitioned", "single"],
        msgspec.Meta(
            description="partitioned (route + dedupe stages, any number of instances) or "
            "single (one stage, one window, exactly one instance: refuses to share its group)"
        ),
    ] = "partitioned"
    repartition_replication_factor: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=32,
            description="replicas of the repartition topic <output>.by-message when it is "
            "created (0: as many as the output topic)",
        ),
    ] = 0
    repartition_retention_s: Annotated[
        int,
        msgspec.Meta(
            ge=1, description="retention of the repartition topic when it is created, in s"
        ),
    ] = 86_400
    state_topic: Annotated[
        str,
        msgspec.Meta(
            description="the state topic: the current state of every message, one record per "
            "change, compacted; created at start when missing (empty: <output>.messages)"
        ),
    ] = ""
    no_state: Annotated[
        bool,
        msgspec.Meta(description="write no state topic (the window then keeps no lifecycle data)"),
    ] = False
    final_timeout_s: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="a message with no final status this long (record time) after its "
            "first report gets a state record with timed_out true; shorter than --window-ttl-s",
        ),
    ] = 43_200
    final_timeouts: Annotated[
        dict[str, int],
        msgspec.Meta(
            description="per provider final timeouts: provider=seconds, comma-separated or "
            "repeated (others: --final-timeout-s)"
        ),
    ] = msgspec.field(default_factory=dict)
    # Process
    workers: Annotated[int, msgspec.Meta(ge=1, description="processes in the consumer group")] = 1
    metrics_port: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                le=65535,
                description="serve Prometheus /metrics, /livez and /readyz on this port (0: "
                "any free port); with --workers, one endpoint for all of them",
            ),
        ]
        | None
    ) = None
    metrics_host: Annotated[
        str,
        msgspec.Meta(
            description="address the metrics endpoint binds (0.0.0.0: every interface, e.g. "
            "in a container)"
        ),
    ] = "127.0.0.1"
    liveness_timeout_s: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="/livez fails when a loop made no progress (a batch, or a poll that "
            "found nothing) for this long, in s",
        ),
    ] = 120
    # Window snapshots (pipeline/state/_snapshot.py)
    state_dir: Annotated[
        str,
        msgspec.Meta(
            description="directory for dedupe window snapshots (relative: under the working "
            "directory; '' turns them off): a restart reads only the output written after them"
        ),
    ] = ".pipeline-state"
    snapshot_interval_s: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description="snapshot the dedupe windows at most this often, in s (also on "
            "revocation and shutdown)",
        ),
    ] = 60
    exactly_once: Annotated[
        bool,
        msgspec.Meta(
            description="topology partitioned: the dedupe stage writes each batch and commits "
            "its offsets in one transaction per output partition, fencing a member that lost "
            "the partition (read the output read_committed)"
        ),
    ] = False
    # Embedded mode (no Kafka)
    source: Annotated[
        str | None,
        msgspec.Meta(
            description="embedded mode: kcat -J JSON lines, a directory of raw bodies, or - (stdin)"
        ),
    ] = None
    to: Annotated[
        str | None,
        msgspec.Meta(description="embedded mode: where events go as JSON lines (- for stdout)"),
    ] = None
    dead_letter: Annotated[
        str | None,
        msgspec.Meta(
            description="embedded mode: dead-letter file (default: <to>.deadletter.jsonl, "
            "stderr for -)"
        ),
    ] = None
    state_to: Annotated[
        str | None,
        msgspec.Meta(
            description="embedded mode: where state records go as JSON lines, one per change "
            "of a message's state (- for stdout; default: none)"
        ),
    ] = None


FLAG_NAMES: Final[dict[str, str]] = {"source": "--from", "to": "--to"}
S = TypeVar("S", bound=msgspec.Struct)
K = TypeVar("K", bound=KafkaSettings)
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


def _description(field_type: msgspec.inspect.Type) -> str | None:
    """The `Meta(description=...)` of a field's type; for `Annotated[...] | None`, the one
    inside the union (constraints such as `ge` cannot be set on the union itself)."""
    if isinstance(field_type, msgspec.inspect.Metadata):
        description = (field_type.extra_json_schema or {}).get("description")
        return description if isinstance(description, str) else _description(field_type.type)
    if isinstance(field_type, msgspec.inspect.UnionType):
        found = (_description(member) for member in field_type.types)
        return next((d for d in found if d is not None), None)
    return None


@functools.cache
def descriptions(settings_type: type[msgspec.Struct]) -> dict[str, str | None]:
    """Each field's description (None where it has none: tests/pipeline/config refuses that)."""
    info = msgspec.inspect.type_info(settings_type)
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.name: _description(field.type) for field in info.fields}


class SettingDoc(NamedTuple):
    """What `--help` and the operations guide say of one setting."""

    name: str
    flag: str
    env: str
    default: Any
    description: str


def setting_docs(settings_type: type[msgspec.Struct] = Settings) -> list[SettingDoc]:
    """Every setting of `settings_type`, in field order; a field without a description is a
    bug (TypeError), so no setting goes undocumented."""
    docs = []
    for name, field in _fields(settings_type).items():
        description = descriptions(settings_type)[name]
        if description is None:
            raise TypeError(f"{settings_type.__name__}.{name} has no Meta(description=...)")
        flag = FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        docs.append(
            SettingDoc(name, flag, f"PIPELINE_{name.upper()}", _default(field), description)
        )
    return docs


def add_arguments(
    parser: argparse.ArgumentParser,
    settings_type: type[msgspec.Struct] = Settings,
    only: Collection[str] = (),
) -> None:
    """One flag per setting of `settings_type` (or of those in `only`), its help the field's
    description and default."""
    parser.add_argument(
        "--config", metavar="FILE", help="TOML file of settings (keys as below, with _)"
    )
    fields = _fields(settings_type)
    for doc in setting_docs(settings_type):
        if only and doc.name not in only:
            continue
        text = f"{doc.description} (default: {doc.default!r}; env {doc.env})"
        if isinstance(doc.default, bool):  # a switch: the flag turns it on
            parser.add_argument(
                doc.flag, dest=doc.name, action="store_true", default=argparse.SUPPRESS, help=text
            )
            continue
        action = "append" if _kind(fields[doc.name]) != "scalar" else "store"
        parser.add_argument(
            doc.flag,
            dest=doc.name,
            action=action,
            default=argparse.SUPPRESS,
            metavar=doc.name.upper(),
            help=text,
        )


def load_run_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    settings = load_settings(Settings, flags, environ)
    if settings.exactly_once and settings.topology == "single":
        # Accepting it would promise what `single` does not do: it writes without transactions.
        raise ConfigError(
            "invalid setting exactly_once: needs topology partitioned (topology single "
            "writes without transactions)"
        )
    check_final_timeouts(settings)
    return settings


def check_final_timeouts(settings: Settings) -> None:
    """Every final timeout is a provider's, positive, and shorter than the window's time bound
    (a late final must still find its message in the window)."""
    ttl = settings.window_ttl_s
    for provider, seconds in settings.final_timeouts.items():
        if provider not in PROVIDERS:
            raise ConfigError(
                f"invalid setting final_timeouts: {provider}={seconds}: unknown provider "
                f"(one of {', '.join(PROVIDERS)})"
            )
        if seconds < 1:
            raise ConfigError(f"invalid setting final_timeouts: {provider}={seconds}: below 1 s")
    for name, seconds in (
        ("final_timeout_s", settings.final_timeout_s),
        *((f"final_timeouts {p}", s) for p, s in settings.final_timeouts.items()),
    ):
        if seconds >= ttl:
            raise ConfigError(
                f"invalid setting {name}: {seconds} s is not shorter than window_ttl_s ({ttl} s): "
                "a final after the timeout must still find its message in the window"
            )


def final_timeouts(settings: Settings) -> tuple[int, dict[str, int]]:
    """(the default final timeout, per-provider ones), in ms."""
    return settings.final_timeout_s * 1000, {
        p: s * 1000 for p, s in settings.final_timeouts.items()
    }


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
        settings = msgspec.convert(merged, settings_type, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = re.search(r"\$\.(\w+)", text)
        name = match.group(1) if match else ""
        where = f" (from {origin[name]})" if name in origin else ""
        choices = _choices(settings_type, name)
        if choices:
            text += f" (valid: {', '.join(choices)})"
        raise ConfigError(f"invalid setting {name or '?'}{where}: {text}") from None
    servers = getattr(settings, "bootstrap_servers", None)
    if isinstance(servers, str):
        try:
            bootstrap_addresses(servers)
        except ValueError as exc:
            where = (
                f" (from {origin['bootstrap_servers']})" if "bootstrap_servers" in origin else ""
            )
            raise ConfigError(f"invalid setting bootstrap_servers{where}: {exc}") from None
    if isinstance(settings, KafkaSettings):
        settings = _with_secrets(settings, origin)
        check_tls(settings)
        problem = level_problem(settings.compression, settings.compression_level)
        if problem is not None:
            raise ConfigError(f"invalid setting compression_level: {problem}")
    return settings


def _choices(settings_type: type[msgspec.Struct], name: str) -> list[str]:
    """The values a Literal setting accepts (empty for any other setting)."""
    info = msgspec.inspect.type_info(settings_type)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        if field.name == name:
            kind = field.type
            while isinstance(kind, msgspec.inspect.Metadata):
                kind = kind.type
            kinds = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
            for one in kinds:
                if isinstance(one, msgspec.inspect.LiteralType):
                    return [str(v) for v in one.values]
    return []


#: One bootstrap address: a host name, IPv4 address or bracketed IPv6 address, and a port.
_ADDRESS: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def bootstrap_addresses(servers: str) -> list[tuple[str, int]]:
    """`servers` (comma-separated host:port) as (host, port) pairs, an IPv6 host without its
    brackets; ValueError saying which item is not a broker address."""
    addresses = []
    for item in (item.strip() for item in servers.split(",")):
        match = _ADDRESS.fullmatch(item)
        if match is None:
            raise ValueError(f"{item!r} is not host:port (e.g. 127.0.0.1:9092)")
        if not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"{item!r}: port {match.group(2)} is not between 1 and 65535")
        addresses.append((match.group(1).strip("[]"), int(match.group(2))))
    return addresses


def _with_secrets(settings: K, origin: Mapping[str, str]) -> K:
    """Secrets read from their files; a secret given as a flag is warned about (`ps` shows
    every process's arguments)."""
    found: dict[str, str] = {}
    for file_setting, name in sorted(SECRET_FILES.items()):
        path = getattr(settings, file_setting)
        if getattr(settings, name) is not None:
            if path is not None:
                raise ConfigError(
                    f"invalid setting {file_setting} (from {origin[file_setting]}): {name} is "
                    f"set too (from {origin[name]}); give one of them"
                )
            if origin.get(name, "").startswith("flag "):
                _log.warning(
                    "a secret given as a flag is visible to every user of the machine (ps): "
                    f"pass it as PIPELINE_{name.upper()} or --{file_setting.replace('_', '-')}",
                    extra={"setting": name},
                )
            continue
        if path is None:
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                found[name] = fh.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"invalid setting {file_setting} (from {origin[file_setting]}): cannot read "
                f"{path}: {reason}"
            ) from None
    return msgspec.structs.replace(settings, **found) if found else settings


#: The levels Kafka's producer accepts per codec (`compression.<codec>.level`).
COMPRESSION_LEVELS: Final = {"zstd": (-131072, 22), "lz4": (1, 17), "gzip": (1, 9)}


def level_problem(compression: str, level: int) -> str | None:
    """Why `level` is no level of `compression` (None when it is, or nothing is compressed)."""
    bounds = COMPRESSION_LEVELS.get(compression)
    if bounds is None or bounds[0] <= level <= bounds[1]:
        return None
    return f"{level} is not a {compression} level ({bounds[0]} to {bounds[1]})"


def check_tls(settings: KafkaSettings) -> None:
    """Stop at start (exit 2) on TLS files that cannot be loaded, naming the setting."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return
    try:
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"invalid setting ssl_cafile: cannot load {settings.ssl_cafile}: {exc}"
        ) from None
    if settings.ssl_certfile is None:
        if settings.ssl_keyfile is not None:
            raise ConfigError("invalid setting ssl_keyfile: needs --ssl-certfile")
        return
    try:
        context.load_cert_chain(
            settings.ssl_certfile, settings.ssl_keyfile, password=settings.ssl_password or ""
        )
    except (OSError, ssl.SSLError) as exc:
        hint = " (is ssl_password right?)" if settings.ssl_password is not None else ""
        raise ConfigError(
            f"invalid setting ssl_certfile/ssl_keyfile: cannot load {settings.ssl_certfile} "
            f"with key {settings.ssl_keyfile or '(in the certificate file)'}: {exc}{hint}"
        ) from None


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    return load_run_settings(vars(args), environ)


def state_topic(settings: Settings) -> str | None:
    """The state topic's name; None with `no_state`."""
    if settings.no_state:
        return None
    return settings.state_topic or f"{settings.output_topic}.messages"


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

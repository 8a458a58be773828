"""Settings of `python -m pipeline ingress`: the Kafka settings it shares with `run`, plus the
HTTP side. Same sources and precedence as `run` (flags > `PIPELINE_*` > TOML)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final

import msgspec

from ..config import HELP, KafkaSettings, Positive, Settings
from ..errors import ConfigError

MiB: Final = 1024 * 1024


class IngressSettings(KafkaSettings, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080
    raw_topic: str = "sms-receipts-raw"
    max_request_bytes: Positive = 8 * MiB
    request_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    ack_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    retry_after_s: Positive = 30
    max_in_flight: Positive = 1000
    max_in_flight_bytes: Positive = 256 * MiB
    tokens: dict[str, str] = msgspec.field(default_factory=dict)
    allow_ips: list[str] = msgspec.field(default_factory=list)
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    keep_alive_s: Positive = 75
    shutdown_timeout_s: Positive = 30


INGRESS_HELP: Final[dict[str, str]] = {
    **{name: HELP[name] for name in KafkaSettings.__struct_fields__},
    "host": "address the HTTP server listens on",
    "port": "port the HTTP server listens on (0: any free port, logged)",
    "raw_topic": "topic the HTTP bodies are written to",
    "max_request_bytes": "largest body accepted; larger ones are answered 413",
    "request_timeout_s": "longest time to receive a request's body (408 after it)",
    "ack_timeout_s": "longest wait for the broker's acknowledgement (503 + Retry-After after it)",
    "retry_after_s": "the Retry-After of 503 answers, in s",
    "max_in_flight": "requests handled at once; more are answered 503 at once",
    "max_in_flight_bytes": "body bytes held at once; more are answered 503",
    "tokens": "shared secrets: provider=token, comma-separated (prefer PIPELINE_TOKENS); "
    "requests to that provider must carry ?token= or an X-Ingress-Token header",
    "allow_ips": "client addresses or networks allowed to post (CIDR, comma-separated; "
    "default: any)",
    "tls_certfile": "serve HTTPS with this certificate (PEM)",
    "tls_keyfile": "the private key of --tls-certfile (PEM)",
    "keep_alive_s": "how long an idle keep-alive connection stays open, in s",
    "shutdown_timeout_s": "on SIGTERM, longest wait for in-flight requests, in s",
}


def networks(
    settings: IngressSettings,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(text, strict=False) for text in settings.allow_ips)
    except ValueError as exc:
        raise ConfigError(f"invalid setting allow_ips: {exc}") from None


def check_settings(settings: IngressSettings, providers: frozenset[str]) -> None:
    """What msgspec cannot say about the settings: stop with the setting's name."""
    unknown = sorted(set(settings.tokens) - providers)
    if unknown:
        raise ConfigError(f"invalid setting tokens: unknown provider(s) {', '.join(unknown)}")
    if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
        raise ConfigError(
            "invalid setting tls_keyfile: --tls-certfile and --tls-keyfile go together"
        )
    networks(settings)


def kafka_settings(settings: KafkaSettings) -> Settings:
    """The processor's Settings with these connection fields: pipeline.kafka's client helpers
    (kafka_options, start_with_retry) take that type."""
    return Settings(**{name: getattr(settings, name) for name in KafkaSettings.__struct_fields__})

"""Settings of `python -m pipeline ingress`: the Kafka settings it shares with `run`, plus the
HTTP side. Same sources and precedence as `run` (flags > `PIPELINE_*` > TOML)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final

import msgspec

from ..config import KafkaSettings, Settings
from ..errors import ConfigError

MiB: Final = 1024 * 1024


class IngressSettings(KafkaSettings, kw_only=True, forbid_unknown_fields=True):
    """Everything `ingress` takes: the Kafka settings plus the HTTP server's."""

    host: Annotated[str, msgspec.Meta(description="address the HTTP server listens on")] = (
        "127.0.0.1"
    )
    port: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=65535,
            description="port the HTTP server listens on (0: any free port, logged)",
        ),
    ] = 8080
    raw_topic: Annotated[str, msgspec.Meta(description="topic the HTTP bodies are written to")] = (
        "sms-receipts-raw"
    )
    max_request_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=1, description="largest body accepted, in bytes; larger ones are answered 413"
        ),
    ] = 8 * MiB
    request_timeout_s: Annotated[
        float,
        msgspec.Meta(
            gt=0, description="longest time to receive a request's body, in s (408 after it)"
        ),
    ] = 30.0
    ack_timeout_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="longest wait for the broker's acknowledgement, in s (503 + "
            "Retry-After after it)",
        ),
    ] = 10.0
    retry_after_s: Annotated[
        int, msgspec.Meta(ge=1, description="the Retry-After of 503 answers, in s")
    ] = 30
    max_in_flight: Annotated[
        int,
        msgspec.Meta(ge=1, description="requests handled at once; more are answered 503 at once"),
    ] = 1000
    max_in_flight_bytes: Annotated[
        int, msgspec.Meta(ge=1, description="body bytes held at once; more are answered 503")
    ] = 256 * MiB
    tokens: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="shared secrets: provider=token, comma-separated (prefer "
            "PIPELINE_TOKENS); requests to that provider must carry ?token= or an "
            "X-Ingress-Token header"
        ),
    ] = msgspec.field(default_factory=dict)
    allow_ips: Annotated[
        list[str],
        msgspec.Meta(
            description="client addresses or networks allowed to post (CIDR, "
            "comma-separated; default: any)"
        ),
    ] = msgspec.field(default_factory=list)
    tls_certfile: Annotated[
        str | None, msgspec.Meta(description="serve HTTPS with this certificate (PEM)")
    ] = None
    tls_keyfile: Annotated[
        str | None, msgspec.Meta(description="the private key of --tls-certfile (PEM)")
    ] = None
    keep_alive_s: Annotated[
        int,
        msgspec.Meta(ge=1, description="how long an idle keep-alive connection stays open, in s"),
    ] = 75
    shutdown_timeout_s: Annotated[
        int,
        msgspec.Meta(ge=1, description="on SIGTERM, longest wait for in-flight requests, in s"),
    ] = 30


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

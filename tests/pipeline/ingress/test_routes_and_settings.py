"""The ingress's route table and settings (no server: those are in tests/integration)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipeline.config import add_arguments, load_settings
from pipeline.core.providers import REGISTRY
from pipeline.errors import ConfigError
from pipeline.ingress import PROVIDERS, ROUTES, IngressSettings, check_settings


def test_every_decodable_endpoint_and_push_has_a_path() -> None:
    for provider, module in REGISTRY.items():
        for endpoint in module.ENDPOINTS:
            route = ROUTES[f"/v1/{provider}/{endpoint}"]
            assert route.headers == [
                ("provider", provider.encode()),
                ("endpoint", endpoint.encode()),
            ]
    for path in (
        "/v1/yunpian/push",
        "/v1/uspeedo/push",
        "/v1/ultiroam/push",
        "/v1/tencent/callback",
    ):
        assert path in ROUTES


def test_success_bodies() -> None:
    assert ROUTES["/v1/yunpian/push"].success.body == b"SUCCESS"
    assert ROUTES["/v1/tencent/callback"].success.body == b'{"result":0,"errmsg":"OK"}'
    assert ROUTES["/v1/uspeedo/push"].success.body == b""
    assert ROUTES["/v1/ultiroam/push"].success.body == b""
    assert ROUTES["/v1/uspeedo/GetUSMSSendReceipt"].success.body == b"{}"
    assert ROUTES["/v1/smspartner/bulk-status"].success.body == b"{}"
    assert (b"content-length", b"7") in ROUTES["/v1/yunpian/push"].success.headers


def flags(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser, IngressSettings)
    return vars(parser.parse_args(argv))


def test_defaults_and_precedence(tmp_path: Path) -> None:
    settings = load_settings(IngressSettings, flags(), {})
    assert (settings.host, settings.port, settings.raw_topic) == (
        "127.0.0.1",
        8080,
        "sms-receipts-raw",
    )
    assert settings.max_request_bytes == 8 * 1024 * 1024
    config = tmp_path / "ingress.toml"
    config.write_text('raw_topic = "from-file"\nport = 1\nhost = "0.0.0.0"\n')
    env = {"PIPELINE_PORT": "2", "PIPELINE_RAW_TOPIC": "from-env", "KAFKA_BOOTSTRAP_SERVERS": "k:1"}
    settings = load_settings(IngressSettings, flags("--config", str(config), "--port", "3"), env)
    assert (settings.host, settings.port, settings.raw_topic) == ("0.0.0.0", 3, "from-env")
    assert settings.bootstrap_servers == "k:1"
    tokens = load_settings(IngressSettings, flags(), {"PIPELINE_TOKENS": "yunpian=a,tencent=b"})
    assert tokens.tokens == {"yunpian": "a", "tencent": "b"}


def test_bad_values_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings(IngressSettings, flags("--port", "70000"), {})
    with pytest.raises(ConfigError, match="PIPELINE_MAX_IN_FLIGHT"):
        load_settings(IngressSettings, flags(), {"PIPELINE_MAX_IN_FLIGHT": "0"})


def test_run_settings_are_not_the_ingress_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        flags("--group-id", "x")
    assert "--group-id" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (IngressSettings(tokens={"nobody": "x"}), "tokens"),
        (IngressSettings(tls_certfile="c.pem"), "tls_keyfile"),
        (IngressSettings(allow_ips=["10.0.0.300/8"]), "allow_ips"),
    ],
)
def test_checks_name_the_setting(settings: IngressSettings, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        check_settings(settings, PROVIDERS)

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import pytest

from pipeline.config import Settings, add_arguments, core_config, load_run_settings
from pipeline.errors import ConfigError


def flags(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def test_defaults() -> None:
    assert load_run_settings(flags(), {}) == Settings()


def test_flags_win_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text('group_id = "from-file"\nlinger_ms = 1\nworkers = 3\n')
    env = {"PIPELINE_LINGER_MS": "2", "PIPELINE_WORKERS": "4"}
    settings = load_run_settings(flags("--config", str(config), "--workers", "5"), env)
    assert (settings.group_id, settings.linger_ms, settings.workers) == ("from-file", 2, 5)


def test_lists_and_maps_from_text() -> None:
    settings = load_run_settings(
        flags(
            "--input-topics", "a,b", "--input-topics", "c", "--time-zones", "ultiroam=Europe/Berlin"
        ),
        {"PIPELINE_TOPIC_MAP": "raw-yp=yunpian.push, raw-tc=tencent"},
    )
    assert settings.input_topics == ["a", "b", "c"]
    assert settings.time_zones == {"ultiroam": "Europe/Berlin"}
    assert settings.topic_map == {"raw-yp": "yunpian.push", "raw-tc": "tencent"}


def test_kafka_bootstrap_servers_env() -> None:
    assert load_run_settings(flags(), {"KAFKA_BOOTSTRAP_SERVERS": "h:1"}).bootstrap_servers == "h:1"
    assert (
        load_run_settings(
            flags(), {"KAFKA_BOOTSTRAP_SERVERS": "h:1", "PIPELINE_BOOTSTRAP_SERVERS": "h:2"}
        ).bootstrap_servers
        == "h:2"
    )


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        ((), {"PIPELINE_WINDOW_TTL_S": "soon"}, "PIPELINE_WINDOW_TTL_S"),
        (("--compression", "snappy"), {}, "--compression"),
        (("--compression-level", "23"), {}, "compression_level: 23 is not a zstd level"),
        (("--compression", "lz4", "--compression-level", "0"), {}, "compression_level"),
        (("--metrics-port", "70000"), {}, "metrics_port"),
        (("--time-zones", "yunpian"), {}, "time_zones"),
    ],
)
def test_bad_values_name_the_setting(
    argv: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_run_settings(flags(*argv), env)


def test_bad_file_key_and_syntax(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("windw_max_messages = 3\n")
    with pytest.raises(ConfigError, match="windw_max_messages"):
        load_run_settings(flags("--config", str(config)), {})
    config.write_text("workers = \n")
    with pytest.raises(ConfigError, match=re.escape(str(config))):
        load_run_settings(flags("--config", str(config)), {})
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_run_settings(flags("--config", str(tmp_path / "missing.toml")), {})


def test_clock_skew_tolerance_reaches_the_core() -> None:
    settings = load_run_settings(flags("--clock-skew-tolerance-s", "7"), {})
    assert core_config(settings).clock_skew_tolerance_ms == 7000
    assert core_config(Settings()).clock_skew_tolerance_ms == 300_000


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_unknown_env_warns() -> None:
    """Kubernetes injects PIPELINE_SERVICE_HOST, PIPELINE_PORT, ... for a Service named
    `pipeline`: warned about and ignored; a bad value of a known key still stops start-up."""
    env = {
        "PIPELINE_SERVICE_HOST": "10.0.0.7",
        "PIPELINE_PORT": "tcp://10.0.0.7:9108",
        "PIPELINE_METRICS_HOST": "0.0.0.0",
    }
    seen = _Records()
    logger = logging.getLogger("pipeline.config")
    logger.addHandler(seen)  # on the logger itself: `pipeline` may not propagate (JSON logs)
    try:
        settings = load_run_settings(flags(), env)
    finally:
        logger.removeHandler(seen)
    assert settings.metrics_host == "0.0.0.0"
    warned = sorted(r.getMessage() for r in seen.records)
    assert warned == [
        "ignoring unknown environment variable PIPELINE_PORT",
        "ignoring unknown environment variable PIPELINE_SERVICE_HOST",
    ]
    with pytest.raises(ConfigError, match="PIPELINE_METRICS_PORT"):
        load_run_settings(flags(), {**env, "PIPELINE_METRICS_PORT": "http"})
    assert load_run_settings(flags(), {}).metrics_host == "127.0.0.1"


def test_service_link_on_a_known_key_is_ignored() -> None:
    """A Service named `pipeline` injects PIPELINE_PORT=tcp://...: the ingress's own `port`
    setting keeps its default (warned), while a plain bad port still stops start-up."""
    from pipeline.config import load_settings
    from pipeline.ingress import IngressSettings

    seen = _Records()
    logger = logging.getLogger("pipeline.config")
    logger.addHandler(seen)
    try:
        settings = load_settings(IngressSettings, {}, {"PIPELINE_PORT": "tcp://10.0.0.7:8080"})
    finally:
        logger.removeHandler(seen)
    assert settings.port == IngressSettings().port
    assert [r.getMessage() for r in seen.records] == [
        "ignoring Kubernetes service link PIPELINE_PORT"
    ]
    with pytest.raises(ConfigError, match="port"):
        load_settings(IngressSettings, {}, {"PIPELINE_PORT": "eighty"})


def test_exactly_once_is_a_switch(tmp_path: Path) -> None:
    assert load_run_settings(flags(), environ={}).exactly_once is False
    assert load_run_settings(flags("--exactly-once"), environ={}).exactly_once is True
    assert (
        load_run_settings(flags(), environ={"PIPELINE_EXACTLY_ONCE": "true"}).exactly_once is True
    )
    config = tmp_path / "p.toml"
    config.write_text("exactly_once = true\n")
    assert load_run_settings(flags("--config", str(config)), environ={}).exactly_once is True
    with pytest.raises(ConfigError, match="exactly_once"):
        load_run_settings(flags(), environ={"PIPELINE_EXACTLY_ONCE": "maybe"})
    with pytest.raises(ConfigError, match="exactly_once: needs topology partitioned"):
        load_run_settings(flags("--exactly-once", "--topology", "single"), environ={})


def test_max_batches_in_flight_from_every_source(tmp_path: Path) -> None:
    assert load_run_settings(flags(), environ={}).max_batches_in_flight == 2
    config = tmp_path / "p.toml"
    config.write_text("max_batches_in_flight = 3\n")
    assert load_run_settings(flags("--config", str(config)), environ={}).max_batches_in_flight == 3
    env = {"PIPELINE_MAX_BATCHES_IN_FLIGHT": "4"}
    assert load_run_settings(flags("--config", str(config)), environ=env).max_batches_in_flight == 4
    assert (
        load_run_settings(flags("--max-batches-in-flight", "1"), environ=env).max_batches_in_flight
        == 1
    )
    with pytest.raises(ConfigError, match=r"max_batches_in_flight.*flag --max-batches-in-flight"):
        load_run_settings(flags("--max-batches-in-flight", "0"), environ={})


# -- secrets ---------------------------------------------------------------------------------


def test_a_password_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret pass\n")
    settings = load_run_settings({}, {"PIPELINE_SASL_PASSWORD_FILE": str(secret)})
    assert settings.sasl_password == "s3cret pass"
    assert "s3cret" not in repr(settings) and "sasl_password='***'" not in repr(settings)
    assert "sasl_password=***" in repr(settings)


def test_an_unreadable_password_file_names_the_setting_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    where = r"ssl_password_file \(from env PIPELINE_SSL_PASSWORD_FILE\)"
    with pytest.raises(ConfigError, match=rf"{where}: cannot read {re.escape(str(missing))}"):
        load_run_settings({}, {"PIPELINE_SSL_PASSWORD_FILE": str(missing)})


def test_a_password_and_its_file_together_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("x")
    with pytest.raises(ConfigError, match="give one of them"):
        load_run_settings({"sasl_password_file": str(secret)}, {"PIPELINE_SASL_PASSWORD": "y"})


def test_a_password_flag_is_warned_about_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.config"):
        settings = load_run_settings(flags("--sasl-password", "hunter2-flag"), {})
    assert settings.sasl_password == "hunter2-flag"
    assert any("visible to every user" in r.getMessage() for r in caplog.records)
    assert "hunter2-flag" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="pipeline.config"):
        caplog.clear()
        load_run_settings({}, {"PIPELINE_SASL_PASSWORD": "from-env"})
    assert not caplog.records  # an environment variable is fine


def test_tls_files_that_cannot_be_loaded_stop_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ssl_cafile: cannot load"):
        load_run_settings(
            {"security_protocol": "SSL", "ssl_cafile": str(tmp_path / "missing-ca.pem")}, {}
        )

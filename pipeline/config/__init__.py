"""Settings: defaults, TOML file, `PIPELINE_*` environment, flags; validated in one conversion."""

from ._settings import (
    KafkaSettings,
    SettingDoc,
    Settings,
    add_arguments,
    bootstrap_addresses,
    core_config,
    descriptions,
    final_timeouts,
    load_run_settings,
    load_settings,
    setting_docs,
    settings_from_args,
    state_topic,
)

__all__ = [
    "KafkaSettings",
    "SettingDoc",
    "Settings",
    "add_arguments",
    "bootstrap_addresses",
    "core_config",
    "descriptions",
    "final_timeouts",
    "load_run_settings",
    "load_settings",
    "setting_docs",
    "settings_from_args",
    "state_topic",
]

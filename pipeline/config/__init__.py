"""Settings: defaults, TOML file, `PIPELINE_*` environment, flags; validated in one conversion."""

from ._settings import (
    HELP,
    KafkaSettings,
    Positive,
    Settings,
    add_arguments,
    core_config,
    load_run_settings,
    load_settings,
    settings_from_args,
)

__all__ = [
    "HELP",
    "KafkaSettings",
    "Positive",
    "Settings",
    "add_arguments",
    "core_config",
    "load_run_settings",
    "load_settings",
    "settings_from_args",
]

"""Settings: defaults, TOML file, `PIPELINE_*` environment, flags; validated in one conversion."""

from ._settings import (
    KafkaSettings,
    Settings,
    add_arguments,
    core_config,
    descriptions,
    load_run_settings,
    load_settings,
    settings_from_args,
)

__all__ = [
    "KafkaSettings",
    "Settings",
    "add_arguments",
    "core_config",
    "descriptions",
    "load_run_settings",
    "load_settings",
    "settings_from_args",
]

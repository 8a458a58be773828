"""Settings: defaults, TOML file, environment, flags, validation."""

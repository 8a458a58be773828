"""Every setting is described once, on its field, and `--help` shows that description."""

from __future__ import annotations

import argparse
from typing import Annotated

import msgspec
import pytest

from pipeline.config import KafkaSettings, Settings, add_arguments, descriptions
from pipeline.ingress import IngressSettings


@pytest.mark.parametrize("settings_type", [KafkaSettings, Settings, IngressSettings])
def test_every_field_has_a_description(settings_type: type[msgspec.Struct]) -> None:
    found = descriptions(settings_type)
    assert set(found) == set(settings_type.__struct_fields__)
    missing = [name for name, text in found.items() if not text or not text.strip()]
    assert not missing, f"{settings_type.__name__}: no Meta(description=...) on {missing}"


def test_constraints_and_description_share_the_field() -> None:
    # Inside `Annotated[...] | None` as well as on the field's whole type.
    assert descriptions(Settings)["metrics_port"] == (
        "serve Prometheus /metrics, /livez and /readyz on this port (0: any free port); "
        "with --workers, one endpoint for all of them"
    )
    with pytest.raises(msgspec.ValidationError, match="metrics_port"):
        msgspec.convert({"metrics_port": 70000}, Settings)
    with pytest.raises(msgspec.ValidationError, match="workers"):
        msgspec.convert({"workers": 0}, Settings)


@pytest.mark.parametrize("settings_type", [Settings, IngressSettings])
def test_help_shows_each_description_with_default_and_env(
    settings_type: type[msgspec.Struct],
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, settings_type)
    helps = {action.dest: action.help for action in parser._actions}
    for name, text in descriptions(settings_type).items():
        shown = helps[name]
        assert shown is not None
        assert shown.startswith(f"{text} (default: ")
        assert shown.endswith(f"; env PIPELINE_{name.upper()})")


def test_a_field_without_description_is_refused() -> None:
    class Bare(msgspec.Struct, kw_only=True):
        described: Annotated[int, msgspec.Meta(description="has one")] = 1
        bare: int = 2

    assert descriptions(Bare) == {"described": "has one", "bare": None}
    with pytest.raises(TypeError, match=r"Bare\.bare has no Meta\(description"):
        add_arguments(argparse.ArgumentParser(), Bare)

"""The I/O-free batch core: routing, decode → normalise → dedupe → encode, and the window."""

from ..state._window import Window
from ._batch import (
    BatchResult,
    Core,
    CoreConfig,
    DeadLetter,
    Decoder,
    InputRecord,
    OutputRecord,
    parse_routes,
)

__all__ = [
    "BatchResult",
    "Core",
    "CoreConfig",
    "DeadLetter",
    "Decoder",
    "InputRecord",
    "OutputRecord",
    "Window",
    "parse_routes",
]

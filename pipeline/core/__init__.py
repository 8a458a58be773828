"""The I/O-free batch core: routing, decode → normalise → dedupe → encode, and the window."""

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
from ._window import Window

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

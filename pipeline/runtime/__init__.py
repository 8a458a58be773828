"""The stream runtime: the stages (route, dedupe, single), the two topologies, the processor
that runs them, and its worker processes."""

from ._dedupe import DedupeStage
from ._processor import Processor, run_kafka
from ._route import SLICE_BYTES, RouteStage, process_in_slices, slices
from ._single import SingleStage
from ._stage import Stage

__all__ = [
    "SLICE_BYTES",
    "DedupeStage",
    "Processor",
    "RouteStage",
    "SingleStage",
    "Stage",
    "process_in_slices",
    "run_kafka",
    "slices",
]

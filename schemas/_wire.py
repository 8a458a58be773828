"""The base of every provider's wire structs."""

from __future__ import annotations

import msgspec


class Wire(msgspec.Struct, gc=False):
    """A decoded provider body holds strings, numbers and lists decoded from JSON: it can never
    be part of a reference cycle, so its structs are not tracked by the cyclic collector (a batch
    decodes tens of thousands of them; tracking each one only triggers collector passes)."""

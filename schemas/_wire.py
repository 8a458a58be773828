"""The base of every provider's wire structs."""

from __future__ import annotations

import msgspec


class Wire(msgspec.Struct, gc=False):
    """A decoded provider body holds strings, numbers and lists decoded from JSON: it can never
    be part of a reference cycle, so its structs are not tracked by the cyclic collector (a batch
    decodes tens of thousands of them; tracking each one only triggers collector passes)."""


#: An id or an identity component: a JSON integer, an integral number (`9527.0`) or text; the
#: decoders make it text (pipeline/core/normalise/_identity.py). A boolean is no id.
Id = int | float | str
#: An integer field: a JSON integer, an integral number or a decimal string (read by
#: pipeline/core/normalise/_numbers.py).
Integer = int | float | str
#: A boolean field: `true`/`false`, `1`/`0`, or those as strings (_numbers.py).
Boolean = bool | int | float | str
#: A time field: an epoch number, or text (pipeline/core/normalise/_times.py).
Time = int | float | str

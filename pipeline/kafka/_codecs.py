"""The compression level of the record batches this process's producers build.

aiokafka compresses at a fixed level per codec (zstd 3, lz4 9, gzip zlib's default) and has no
setting for it, where Kafka's own producer has ``compression.<codec>.level``. Its record batch
builders (the C one and the pure-Python one) call the codec functions by module-global name;
`use_level` puts the same functions there, bound to the configured level. One level per
process: every producer of a process is built from the same settings.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, Final

from aiokafka import codec
from aiokafka.record import default_records

try:
    from aiokafka.record._crecords import default_records as c_default_records
except ImportError:  # aiokafka without its C extension
    c_default_records = None

#: Each codec's function in aiokafka.codec and its level keyword.
_ENCODERS: Final = {
    "zstd": ("zstd_encode", "level"),
    "lz4": ("lz4_encode", "level"),
    "gzip": ("gzip_encode", "compresslevel"),
}
_BUILDERS: Final[tuple[ModuleType, ...]] = tuple(
    m for m in (default_records, c_default_records) if m is not None
)


def use_level(compression: str, level: int) -> None:
    """Compress every `compression` record batch this process builds at `level` (one of the
    codec's levels: the settings check it); nothing for ``none``."""
    if compression not in _ENCODERS:
        return
    name, keyword = _ENCODERS[compression]
    encode: Any = functools.partial(getattr(codec, name), **{keyword: level})
    for module in _BUILDERS:
        if not callable(getattr(module, name, None)):
            raise RuntimeError("aiokafka's record builder changed: pipeline/kafka/_codecs.py")
        setattr(module, name, encode)

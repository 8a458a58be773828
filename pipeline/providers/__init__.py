"""The provider registry: one module per provider, all of the same shape.

A sixth provider is one new module with `PROVIDER`, `ENDPOINTS`, `DEFAULT_TZ`, `sniff` and
`decode`, and one line in `_MODULES`.
"""

from __future__ import annotations

from typing import Final, Protocol

from schemas import ReceiptEvent

from ..normalise._context import RecordContext
from . import smspartner, tencent, ultiroam, uspeedo, yunpian


class ProviderModule(Protocol):
    @property
    def PROVIDER(self) -> str: ...

    @property
    def ENDPOINTS(self) -> tuple[str, ...]: ...

    def sniff(self, body: bytes) -> str | None:
        """The endpoint if `body` has this provider's unmistakable shape, else None."""

    def decode(self, body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
        """Events in body order; DecodeError subclasses for bad bodies, NotReceipts to skip."""


_MODULES: Final[tuple[ProviderModule, ...]] = (
    uspeedo,
    ultiroam,
    yunpian,
    smspartner,
    tencent,
)

REGISTRY: Final[dict[str, ProviderModule]] = {m.PROVIDER: m for m in _MODULES}

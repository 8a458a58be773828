"""The provider registry: one module per provider, all of the same shape.

A sixth provider is one new module with `PROVIDER`, `ENDPOINTS`, `SKIP_KINDS`, `DEFAULT_TZ`,
`sniff` and `decode`, and one line in `_MODULES`.
"""

from __future__ import annotations

from typing import Final, Protocol

from schemas import ReceiptEvent

from ..normalise import RecordContext
from . import smspartner, tencent, ultiroam, uspeedo, yunpian


class ProviderModule(Protocol):
    @property
    def PROVIDER(self) -> str: ...

    @property
    def ENDPOINTS(self) -> tuple[str, ...]: ...

    @property
    def SKIP_KINDS(self) -> frozenset[str]:
        """Every kind its NotReceipts may carry: metric labels come from closed sets."""

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
#: The closed set of skip kinds; the core counts any other kind as `other`.
SKIP_KINDS: Final = frozenset().union(*(m.SKIP_KINDS for m in _MODULES))

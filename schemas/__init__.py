"""msgspec structs: the canonical receipt event, the state record and each provider's wire
formats."""

from ._event import (
    FINALITY,
    PROVIDER_INDEX,
    PROVIDERS,
    RANK,
    STATUS_INDEX,
    STATUSES,
    Channel,
    Finality,
    Provider,
    ReceiptEvent,
    Source,
    Status,
)
from ._state import MessageState, StatusSeen

__all__ = [
    "FINALITY",
    "PROVIDERS",
    "PROVIDER_INDEX",
    "RANK",
    "STATUSES",
    "STATUS_INDEX",
    "Channel",
    "Finality",
    "MessageState",
    "Provider",
    "ReceiptEvent",
    "Source",
    "Status",
    "StatusSeen",
]

"""The project's errors. Every reason a body becomes a dead letter is a `DecodeError` subclass;
the subclass name is what the dead-letter record carries as `error.class`."""

from __future__ import annotations

from typing import Final

from schemas import ReceiptEvent

#: Bodies above this many bytes are rejected before parsing (configurable).
DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024
#: The per-record byte limit of a topic when the broker's is not known: Kafka's default
#: max.message.bytes (1048588) less a margin for the batch header (61 bytes) and for compression
#: framing. One record a topic refuses would stop the pipeline at every restart, so every output
#: and dead-letter record is sized against its topic's limit (key, value, headers, overhead).
DEFAULT_RECORD_MAX_BYTES: Final = 1_048_588 - 4096


class DecodeError(Exception):
    """A body that cannot become receipt events."""

    #: Positions of the failing reports in the body, when only some failed (`error.reports`).
    reports: tuple[int, ...] = ()

    @property
    def error_class(self) -> str:
        return type(self).__name__


class MalformedBody(DecodeError):
    """Not valid for its format: bad UTF-8, truncated JSON, wrong types, missing fields,
    absurd values."""


class BodyTooLarge(DecodeError):
    """Larger than the configured limit; rejected before parsing."""


class UnsafeXml(DecodeError):
    """XML with a DTD, entity declarations or external references; never expanded or fetched."""


class UnknownFormat(DecodeError):
    """Provider or endpoint could not be resolved from headers, topic mapping or body shape."""


class ProviderError(DecodeError):
    """The provider's own error response (uSpeedo RetCode != 0, SMS Partner success:false, ...)."""


class PartialBody(DecodeError):
    """Some reports of a body are invalid: the valid ones are emitted (`events`), the body is
    dead-lettered once with the failing positions; a replay after a fix emits what was missing."""

    def __init__(self, message: str, events: list[ReceiptEvent], reports: tuple[int, ...]) -> None:
        super().__init__(message)
        self.events = events
        self.reports = reports


class EventTooLarge(DecodeError):
    """Events of this body that no output record could hold within the topic's size limit."""

    def __init__(self, message: str, reports: tuple[int, ...]) -> None:
        super().__init__(message)
        self.reports = reports


class NotReceipts(Exception):
    """A recognised body that carries no receipts (an inbound SMS, reply status, statistics).

    Not an error: the record is skipped and counted under `kind`.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

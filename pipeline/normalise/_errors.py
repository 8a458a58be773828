"""The project's errors. Every reason a body becomes a dead letter is a `DecodeError` subclass;
the subclass name is what the dead-letter record carries as `error.class`."""

from __future__ import annotations

from typing import Final

#: Bodies above this many bytes are rejected before parsing (configurable).
DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024
#: Dead-letter values above this are truncated: Kafka's default max.message.bytes is 1 MiB, and
#: one record the dead-letter topic refuses would otherwise stop the pipeline at every restart.
DEFAULT_DEAD_LETTER_MAX_BYTES: Final = 1_000_000


class DecodeError(Exception):
    """A body that cannot become receipt events."""

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


class NotReceipts(Exception):
    """A recognised body that carries no receipts (an inbound SMS, reply status, statistics).

    Not an error: the record is skipped and counted under `kind`.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

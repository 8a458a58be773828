"""The project's errors, and the exit code each one ends a command with.

Two families. A `DecodeError` is why a body became a dead letter: the subclass name is what the
dead-letter record carries as `error.class`, so these names are a contract. A `PipelineError`
stops a command: its message names what to fix, its `exit_code` says whose fix it is (2: a
setting or the deployment, 1: the broker or the environment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from schemas import ReceiptEvent

__all__ = [
    "DEAD_LETTER_CLASSES",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNCOMMITTED",
    "AuthenticationFailed",
    "BodyTooLarge",
    "BrokerUnreachable",
    "ConfigError",
    "DecodeError",
    "EventTooLarge",
    "InvalidTimestamp",
    "MalformedBody",
    "NotReceipts",
    "PartialBody",
    "PipelineError",
    "ProviderError",
    "RestoreStalled",
    "SettingProblem",
    "StageFailed",
    "TopicProblem",
    "UnknownFormat",
    "UnreadableRecord",
    "UnsafeXml",
    "exit_code",
]

#: Exit codes of every command.
EXIT_OK: Final = 0
#: The broker, the environment or a bug stopped the command.
EXIT_FAILED: Final = 1
#: A setting or the deployment must be fixed (the message names it).
EXIT_CONFIG: Final = 2
#: A stop gave up on batches in hand: they are re-read on the next start (no loss).
EXIT_UNCOMMITTED: Final = 3
#: Interrupted by Ctrl-C before anything could be stopped cleanly.
EXIT_INTERRUPTED: Final = 130


# -- dead-letter reasons --------------------------------------------------------------------------


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


class UnreadableRecord(DecodeError):
    """A record the Kafka client could not parse (e.g. a header key that is not UTF-8)."""


class InvalidTimestamp(DecodeError):
    """An event the output topic refused for its timestamp (outside the topic's
    `message.timestamp.*` window)."""


def _names(cls: type[DecodeError]) -> set[str]:
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))


class NotReceipts(Exception):
    """A recognised body that carries no receipts (an inbound SMS, reply status, statistics).

    Not an error: the record is skipped and counted under `kind`.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


#: Every `error.class` a dead letter can carry.
DEAD_LETTER_CLASSES: Final = frozenset(_names(DecodeError) - {DecodeError.__name__})


# -- what stops a command -------------------------------------------------------------------------


class PipelineError(Exception):
    """A command cannot go on; it prints this message and exits with `exit_code`."""

    exit_code: int = EXIT_FAILED


class ConfigError(PipelineError, ValueError):
    """A bad flag, environment variable or config-file value; the message names it."""

    exit_code = EXIT_CONFIG


class BrokerUnreachable(PipelineError):
    """The broker did not answer within the start-up timeout."""


class AuthenticationFailed(PipelineError):
    """The broker refused the credentials (SASL user and password, or the TLS client
    certificate); retrying cannot help. The message names the mechanism and the user or the
    certificate file, never a password."""

    exit_code = EXIT_CONFIG


class TopicProblem(PipelineError):
    """A topic the processor needs is missing or not accessible; the message names it."""

    exit_code = EXIT_CONFIG


class StageFailed(PipelineError):
    """A stage cannot go on; the process exits non-zero with this message."""


class SettingProblem(StageFailed):
    """A stop that a setting or the deployment must fix."""

    exit_code = EXIT_CONFIG


class RestoreStalled(PipelineError):
    """A window restore's read made no progress for its stall bound (the broker answers no
    fetch)."""


def exit_code(exc: BaseException) -> int:
    """The exit code a command ends with when `exc` stops it."""
    if isinstance(exc, PipelineError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_FAILED

"""Command line: `run`, `ingress`, `topics create`, `redrive`, `normalise`, `schema`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from schemas import MessageState, ReceiptEvent

from ..config import (
    Settings,
    add_arguments,
    core_config,
    final_timeouts,
    load_settings,
    settings_from_args,
)
from ..core import Core, CoreConfig, Decoder, InputRecord, Lifecycle, Timeouts
from ..core.providers import REGISTRY
from ..errors import (
    EXIT_INTERRUPTED,
    ConfigError,
    DecodeError,
    NotReceipts,
    PartialBody,
    PipelineError,
)
from ..ops import configure_logging, tune_collector
from . import _topics


def event_schema() -> bytes:
    """The canonical event's JSON Schema, as committed in schemas/receipt_event.schema.json."""
    return _schema(ReceiptEvent, "ReceiptEvent v1")


def state_schema() -> bytes:
    """The state record's JSON Schema, as committed in schemas/message_state.schema.json."""
    return _schema(MessageState, "MessageState v1")


def _schema(struct: type[msgspec.Struct], title: str) -> bytes:
    schema = msgspec.json.schema(struct)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    return msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n"


def _cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.buffer.write(state_schema() if args.state else event_schema())
    return 0


def _cmd_normalise(args: argparse.Namespace) -> int:
    headers = [("provider", args.provider.encode())]
    if args.endpoint:
        headers.append(("endpoint", args.endpoint.encode()))
    if args.tz:
        headers.append(("tz", args.tz.encode()))
    decoder = Decoder(CoreConfig(max_body_bytes=args.max_body_bytes))
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    status = 0
    for name in args.files:
        path = Path(name)
        try:
            body = path.read_bytes()
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
            status = 1
            continue
        stamp = int(path.stat().st_mtime * 1000)
        try:
            events = decoder.decode(InputRecord(name, 0, 0, stamp, headers, body))
        except PartialBody as partial:
            # What the pipeline does: the good reports' events go out, the body is dead-lettered.
            events = partial.events
            print(f"{name}: {partial.error_class}: {partial}", file=sys.stderr)
            status = 1
        except DecodeError as exc:
            print(f"{name}: {exc.error_class}: {exc}", file=sys.stderr)
            status = 1
            continue
        except NotReceipts as skip:
            print(f"{name}: no receipts ({skip.kind})", file=sys.stderr)
            continue
        # Encoded whole before writing, so a body that fails whole prints nothing.
        out.write(b"".join(encoder.encode(e) + b"\n" for e in events))
    return status


def _cmd_run(args: argparse.Namespace) -> int:
    configure_logging("WARNING")  # start-up warnings (unknown env variables) as JSON lines too
    settings = settings_from_args(args)
    config = core_config(settings)
    if settings.source is None and (
        settings.to is not None or settings.dead_letter is not None or settings.state_to is not None
    ):
        flag = (
            "--to"
            if settings.to is not None
            else "--dead-letter"
            if settings.dead_letter is not None
            else "--state-to"
        )
        raise ConfigError(
            f"{flag} needs --from (files in, files out); without --from, run reads and writes Kafka"
        )
    if settings.source is not None:
        from ..state import Window
        from ._embedded import run_embedded

        keep_states = settings.state_to is not None
        window = Window(
            settings.window_max_messages, settings.window_ttl_s * 1000, lifecycle=keep_states
        )
        timeouts = Timeouts(*final_timeouts(settings), window.max_messages)
        lifecycle = Lifecycle(window, timeouts) if keep_states else None
        tune_collector()
        return run_embedded(
            Core(window, config, lifecycle=lifecycle),
            settings.source,
            settings.to or "-",
            settings.dead_letter,
            settings.state_to,
        )
    from ..runtime import run_kafka

    return run_kafka(settings)


def _cmd_ingress(args: argparse.Namespace) -> int:
    from ..ingress import IngressSettings, run_ingress

    configure_logging("WARNING")  # start-up warnings (a secret given as a flag) as JSON lines
    return run_ingress(load_settings(IngressSettings, vars(args)))


def _cmd_redrive(args: argparse.Namespace) -> int:
    from ._redrive import selection_from_args, unknown_classes

    configure_logging("WARNING")
    settings = load_settings(Settings, vars(args))
    selection = selection_from_args(args)
    target = args.to_topic or settings.input_topics[0]
    if target == settings.dead_letter_topic:
        raise ConfigError(f"--to-topic {target!r} is the dead-letter topic itself")
    for name in unknown_classes(selection):
        print(f"warning: --error-class {name!r}: not a class the processor writes", file=sys.stderr)
    configure_logging(settings.log_level)
    from ._redrive_kafka import run_redrive

    return run_redrive(
        settings,
        selection,
        target,
        progress_s=args.progress_interval_s,
        dry_run=args.dry_run,
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="SMS delivery-receipt pipeline: raw provider bodies in, canonical events out.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="the stream processor (Kafka in, Kafka out; --from/--to for files, no Kafka)",
        description="Run the pipeline. With --from it runs on files (embedded mode); "
        "otherwise it consumes and produces Kafka topics.",
    )
    add_arguments(run)
    run.set_defaults(func=_cmd_run)

    from ..ingress import IngressSettings

    ingress = sub.add_parser(
        "ingress",
        help="the webhook ingress: HTTP bodies onto the raw topic, answered after the broker's ack",
    )
    add_arguments(ingress, IngressSettings)
    ingress.set_defaults(func=_cmd_ingress)

    _topics.add_parser(sub)

    from ._redrive import add_redrive_arguments

    redrive = sub.add_parser(
        "redrive",
        help="copy dead letters back to the raw topic (by class, time or offsets), at least once",
        description="Copy dead letters back to the raw topic: the original value, headers "
        "(without the error.* and source.* ones, plus redriven.from) and timestamp. Reads the "
        "dead-letter topic up to its end at start, without a consumer group; reports done only "
        "once every copy is acknowledged. Settings as for run (flags, PIPELINE_*, --config).",
    )
    add_redrive_arguments(redrive)
    redrive.set_defaults(func=_cmd_redrive)

    norm = sub.add_parser("normalise", help="decode raw bodies and print canonical events")
    norm.add_argument("--provider", required=True, choices=sorted(REGISTRY))
    norm.add_argument("--endpoint", help="the endpoint (default: recognised from the body)")
    norm.add_argument("--tz", help="IANA zone for naive times (default: the provider's)")
    norm.add_argument("--max-body-bytes", type=int, default=CoreConfig().max_body_bytes)
    norm.add_argument("files", nargs="+", metavar="FILE")
    norm.set_defaults(func=_cmd_normalise)

    schema = sub.add_parser(
        "schema",
        help="print the canonical event's (or with --state the state record's) JSON Schema",
    )
    schema.add_argument(
        "--state", action="store_true", help="the state record's schema (the state topic's value)"
    )
    schema.set_defaults(func=_cmd_schema)

    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except PipelineError as exc:  # a setting (exit 2), refused credentials (2), ...
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code

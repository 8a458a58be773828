"""`python -m pipeline topics create`: the topics `run` needs and does not create itself.

It creates the input, output and dead-letter topics named by the settings that are missing, one
at a time in that order, and prints one line per topic. A topic is never described before it
is created: aiokafka's metadata requests let a broker with auto.create.topics.enable create a
missing topic with its defaults, so the CreateTopics answer (created, or already there) is what
tells them apart.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Final, TextIO

import anyio
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ..config import Settings, add_arguments, settings_from_args
from ..errors import AuthenticationFailed, BrokerUnreachable, TopicProblem
from ..kafka import create_topic, kafka_options, start_with_retry, wait_for_leaders

#: The settings `topics create` reads: the connection and the topic names (the other settings
#: of `run` are accepted from the environment and a TOML file, and ignored).
FLAGS: Final = (
    "bootstrap_servers",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "startup_timeout_s",
    "input_topics",
    "input_pattern",
    "output_topic",
    "dead_letter_topic",
)
DEFAULT_PARTITIONS: Final = 6
#: aiokafka's NewTopic refuses -1 (the broker's default.replication.factor), so: one replica.
DEFAULT_REPLICATION: Final = 1


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser("topics", help="create the topics `run` reads and writes")
    commands = topics.add_subparsers(dest="topics_command", required=True, metavar="{create}")
    create = commands.add_parser(
        "create",
        help="create the missing input, output and dead-letter topics",
        description="Create the input, output and dead-letter topics named by the settings "
        "(the same flags, PIPELINE_* environment and TOML file as `run`) unless they exist, "
        "and print one line per topic: 'created <topic> (<P> partitions, replication <R>)' or "
        "'exists <topic> (<P> partitions)'. Existing topics are left as they are. Exit codes: "
        "0 all exist; 1 broker not reachable within --startup-timeout-s, or a Kafka error; "
        "2 a creation refused (the line names the topic and the broker's reason) or a bad "
        "setting.",
    )
    add_arguments(create, only=FLAGS)
    create.add_argument(
        "--partitions",
        type=_count(1, 2**31 - 1),
        default=DEFAULT_PARTITIONS,
        metavar="N",
        help="partitions of every topic it creates: one count for all (default: "
        f"{DEFAULT_PARTITIONS}). The output topic's count is the number of dedupe windows, "
        "the unit of scale-out; topology partitioned creates <output>.by-message with the same "
        "count at start, and changing it later stops a running processor",
    )
    create.add_argument(
        "--replication-factor",
        type=_count(1, 32767),
        default=DEFAULT_REPLICATION,
        metavar="R",
        help=f"replicas of every topic it creates (default: {DEFAULT_REPLICATION}, not the "
        "broker's default.replication.factor: aiokafka cannot ask for that); use 3 on a "
        "production cluster",
    )
    create.set_defaults(func=_cmd_create)


def _cmd_create(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    # The outcome is this command's one line: not every failed connect while it retries.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("pipeline.kafka").setLevel(logging.ERROR)
    try:
        anyio.run(
            create_topics,
            settings,
            args.partitions,
            args.replication_factor,
            sys.stdout,
            backend="asyncio",
        )
    except BrokerUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:  # some have no message of their own
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except (AuthenticationFailed, TopicProblem) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


async def create_topics(settings: Settings, partitions: int, replicas: int, out: TextIO) -> None:
    """Create the missing topics of `settings`, reporting each on `out`."""
    roles = {t: "input (--input-topics)" for t in settings.input_topics}
    if settings.input_pattern:
        roles = {}
        print(
            f"input topics not created: --input-pattern {settings.input_pattern!r} is set "
            "(run subscribes to the topics matching it; create them yourself)",
            file=sys.stderr,
        )
    roles.setdefault(settings.output_topic, "output (--output-topic)")
    roles.setdefault(settings.dead_letter_topic, "dead-letter (--dead-letter-topic)")
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await start_with_retry(admin, "admin", settings)
    try:
        for topic, role in roles.items():
            created = await create_topic(admin, topic, partitions, replicas=replicas, role=role)
            count = await wait_for_leaders(admin, topic)
            if created:
                print(f"created {topic} ({count} partitions, replication {replicas})", file=out)
            else:
                print(f"exists {topic} ({count} partitions)", file=out)
            out.flush()
    finally:
        await admin.close()

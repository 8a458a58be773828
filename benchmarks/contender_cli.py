"""What the e2e contender scripts (relay.py, baseline_kafka.py, peer_quix.py) share: their command
line, as e2e/contenders.py passes it, and the end of an aiokafka batch (acks, then commit)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any


def parser(doc: str, *, dead_letters: bool = True) -> argparse.ArgumentParser:
    """The flags every contender takes (its docstring's first paragraph as description)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--bootstrap-servers", required=True)
    p.add_argument("--input-topics", required=True, help="comma-separated")
    p.add_argument("--output-topic", required=True)
    if dead_letters:
        p.add_argument("--dead-letter-topic", required=True)
    p.add_argument("--group-id", required=True)
    p.add_argument("--first-file", help="append the time of the first consumed batch here")
    return p


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (how the harness stops a contender)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


async def acked_then_commit(consumer: Any, futures: list[Any], batches: dict[Any, Any]) -> None:
    """Wait for every send of the batch, then commit past its last record per partition."""
    if futures:
        await asyncio.gather(*futures)
    await consumer.commit(
        {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
    )

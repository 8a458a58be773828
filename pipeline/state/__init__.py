"""Dedupe state: the window, message identities, snapshots, and restore from the output topic.

A window per output partition holds each message's statuses; the output topic is its changelog
(a restore reads it back), and a snapshot file shortens that read.
"""

from ._identities import Identities, forwarded, header_codes, passing
from ._restore import STALL_S, Restored, Restorer, bound
from ._snapshot import (
    SNAPSHOT_FORMAT,
    Snapshot,
    decode_snapshot,
    encode_snapshot,
    load_snapshot,
    save_snapshot,
    snapshot_path,
    snapshot_usable,
    write_snapshot,
)
from ._window import Window, WindowCounters, message_hash, message_hashes

__all__ = [
    "SNAPSHOT_FORMAT",
    "STALL_S",
    "Identities",
    "Restored",
    "Restorer",
    "Snapshot",
    "Window",
    "WindowCounters",
    "bound",
    "decode_snapshot",
    "encode_snapshot",
    "forwarded",
    "header_codes",
    "load_snapshot",
    "message_hash",
    "message_hashes",
    "passing",
    "save_snapshot",
    "snapshot_path",
    "snapshot_usable",
    "write_snapshot",
]

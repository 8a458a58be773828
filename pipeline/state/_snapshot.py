"""Local snapshots of window partitions: one file per (group, output topic, partition).

A snapshot holds window p (:meth:`Window.dump`) with the output offset it reflects (the next
output offset of partition p not yet in the window) and the newest record time it has seen. It
is written atomically (temporary file, fsync, rename, fsync of the directory), so a crash at any
point leaves either the previous snapshot or the new one, never a mix. On assignment of p the
dedupe stage loads it and reads only the output records from its offset on.

A snapshot is never trusted blindly: :func:`load_snapshot` returns None, with a WARNING naming the
file and the reason, when it is missing, unreadable, truncated or corrupt (checksums over header and
payload), foreign (another group, topic or partition), or incompatible (another format version,
window capacity or ttl). Staleness against the broker is the caller's check, with
:func:`snapshot_usable`, once it knows the partition's log start and end offsets.

File layout (little-endian): a fixed header (magic, format, name lengths, partition, capacity,
ttl, offset, newest record time, payload length, payload CRC-32), the group and topic names
(UTF-8), the CRC-32 of all that, then the payload (the window dump's length, the window dump,
the messages waiting for a final status). The dump contains the
window's hash key: keep the state directory private (it is created 0700, files 0600).

Cost (benchmarks/RESULTS.md): 1 M messages make a 14 MB file, 0.15 s to dump, 0.24 s to load;
5 M an 84 MB file, 0.7 s to dump, 1.5 s to load. :func:`save_snapshot` does both the dump and the
write; a caller that must not hold its event loop during the write calls :func:`encode_snapshot` on
the loop (the window must not change while it is dumped) and :func:`write_snapshot` in a thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from hashlib import blake2b
from pathlib import Path
from typing import Final, NamedTuple
from urllib.parse import quote

from ._window import Window

__all__ = [
    "Rejected",
    "Snapshot",
    "decode_snapshot",
    "encode_snapshot",
    "load_snapshot",
    "save_snapshot",
    "snapshot_path",
    "snapshot_usable",
    "write_snapshot",
]

log = logging.getLogger("pipeline.snapshot")

MAGIC: Final = b"SMSWSNAP"
#: 2: the payload holds the window dump's length, the dump, then the messages waiting for a
#: final status (their time-outs); a format 1 file is refused (the restore reads the output).
SNAPSHOT_FORMAT: Final = 2
_LEN: Final = struct.Struct("<Q")
#: magic, format, group length, topic length, partition, capacity, ttl_ms, offset, newest_ts,
#: payload length, payload CRC-32.
_HEAD: Final = struct.Struct("<8sHHHIQQqqQI")
_CRC: Final = struct.Struct("<I")
_SUFFIX: Final = ".snapshot"


class Snapshot(NamedTuple):
    """What :func:`load_snapshot` returns: the window, the output offset it reflects (the next to
    read), the newest record time it had seen (ms), and the dump of its messages waiting for a
    final status (`core.Timeouts.dump`; empty without the state topic)."""

    window: Window
    offset: int
    newest_ts: int
    waiting: bytes = b""


class Rejected(Exception):
    """Why a snapshot file is not used (logged by :func:`load_snapshot`)."""


def snapshot_path(
    state_dir: str | os.PathLike[str], group: str, topic: str, partition: int
) -> Path:
    """The snapshot file of a partition: ``<state_dir>/<group>+<topic>+<p>.snapshot``, names
    percent-quoted (so any group id is a safe file name); very long names are hashed."""
    name = f"{quote(group, safe='')}+{quote(topic, safe='')}+{partition}{_SUFFIX}"
    if len(name) > 200:  # file names are limited to 255 bytes; the header holds the names
        digest = blake2b(f"{group}\0{topic}".encode(), digest_size=16).hexdigest()
        name = f"{digest}+{partition}{_SUFFIX}"
    return Path(state_dir) / name


def encode_snapshot(
    group: str,
    topic: str,
    partition: int,
    window: Window,
    offset: int,
    newest_ts: int,
    waiting: bytes = b"",
) -> bytes:
    """The snapshot file's bytes (dumps the window: call it where the window cannot change);
    ``waiting``: the window's messages waiting for a final status (`core.Timeouts.dump`)."""
    dump = window.dump()
    payload = _LEN.pack(len(dump)) + dump + waiting
    g, t = group.encode(), topic.encode()
    head = (
        _HEAD.pack(
            MAGIC,
            SNAPSHOT_FORMAT,
            len(g),
            len(t),
            partition,
            window.max_messages,
            window.ttl_ms,
            offset,
            newest_ts,
            len(payload),
            zlib.crc32(payload),
        )
        + g
        + t
    )
    return b"".join((head, _CRC.pack(zlib.crc32(head)), payload))


def write_snapshot(
    state_dir: str | os.PathLike[str], group: str, topic: str, partition: int, data: bytes
) -> Path:
    """Write :func:`encode_snapshot`'s bytes atomically as the partition's snapshot; the path.

    Temporary file in the same directory, fsync, rename over the old snapshot, fsync of the
    directory (so the rename itself survives a power cut). Leftover temporary files of this
    partition (a crash mid-write) are removed first; :func:`load_snapshot` never reads them.
    """
    path = snapshot_path(state_dir, group, topic, partition)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Quoted names hold no glob syntax.
    for stray in path.parent.glob(f"{path.name}.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            stray.unlink()
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=True) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def save_snapshot(
    state_dir: str | os.PathLike[str],
    group: str,
    topic: str,
    partition: int,
    window: Window,
    offset: int,
    newest_ts: int,
) -> Path:
    """Snapshot window ``partition`` of ``topic`` for ``group``: encode, then write.

    ``offset``: the next output offset of the partition the window does not reflect yet (every
    record before it is in the window). ``newest_ts``: the newest record time seen (ms).
    """
    return write_snapshot(
        state_dir,
        group,
        topic,
        partition,
        encode_snapshot(group, topic, partition, window, offset, newest_ts),
    )


def load_snapshot(
    state_dir: str | os.PathLike[str],
    group: str,
    topic: str,
    partition: int,
    capacity: int,
    ttl_ms: int,
) -> Snapshot | None:
    """The partition's snapshot, or None when there is none (INFO) or it cannot be trusted
    (a WARNING saying why): unreadable, truncated, corrupt, foreign (another group, topic or
    partition), or incompatible (another format, ``capacity`` or ``ttl_ms``). Staleness
    against the broker is checked by the caller with :func:`snapshot_usable`."""
    path = snapshot_path(state_dir, group, topic, partition)
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # a first start: normal, the restore reads the output instead
        log.info("no snapshot of %s partition %d for group %s (%s)", topic, partition, group, path)
        return None
    except OSError as exc:
        log.warning("ignoring snapshot %s: cannot read it: %s", path, exc)
        return None
    try:
        return decode_snapshot(data, group, topic, partition, capacity, ttl_ms)
    except Rejected as exc:
        log.warning("ignoring snapshot %s: %s", path, exc)
        return None


def decode_snapshot(
    data: bytes, group: str, topic: str, partition: int, capacity: int, ttl_ms: int
) -> Snapshot:
    """Parse and check a snapshot file's bytes; raises :class:`Rejected` (see load_snapshot)."""
    if len(data) < _HEAD.size:
        raise Rejected(f"truncated: {len(data)} bytes")
    (
        magic,
        version,
        glen,
        tlen,
        their_partition,
        their_capacity,
        their_ttl,
        offset,
        newest_ts,
        payload_len,
        payload_crc,
    ) = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise Rejected("not a snapshot file (wrong magic)")
    if version != SNAPSHOT_FORMAT:
        raise Rejected(f"format version {version}, this build reads {SNAPSHOT_FORMAT}")
    end = _HEAD.size + glen + tlen
    if len(data) < end + _CRC.size:
        raise Rejected(f"truncated: {len(data)} bytes")
    (head_crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(memoryview(data)[:end]) != head_crc:
        raise Rejected("header checksum mismatch")
    their_group = data[_HEAD.size : _HEAD.size + glen].decode("utf-8", "replace")
    their_topic = data[_HEAD.size + glen : end].decode("utf-8", "replace")
    if (their_group, their_topic, their_partition) != (group, topic, partition):
        raise Rejected(
            f"foreign: group {their_group!r} topic {their_topic!r} partition {their_partition}"
        )
    if (their_capacity, their_ttl) != (capacity, ttl_ms):
        raise Rejected(
            f"incompatible: window capacity {their_capacity} ttl {their_ttl} ms, "
            f"configured {capacity} and {ttl_ms} ms"
        )
    payload = memoryview(data)[end + _CRC.size :]
    if len(payload) != payload_len:
        raise Rejected(f"payload of {len(payload)} bytes, header says {payload_len}")
    if zlib.crc32(payload) != payload_crc:
        raise Rejected("payload checksum mismatch")
    if len(payload) < _LEN.size:
        raise Rejected("payload too short")
    (dump_len,) = _LEN.unpack_from(payload)
    if _LEN.size + dump_len > len(payload):
        raise Rejected(f"window dump of {dump_len} bytes, payload {len(payload)}")
    try:
        window = Window.restore(payload[_LEN.size : _LEN.size + dump_len])
    except ValueError as exc:
        raise Rejected(str(exc)) from None
    if (window.max_messages, window.ttl_ms) != (capacity, ttl_ms):
        raise Rejected("window bounds differ from the header's")
    if offset < 0:
        raise Rejected(f"negative offset {offset}")
    return Snapshot(window, offset, newest_ts, bytes(payload[_LEN.size + dump_len :]))


def snapshot_usable(snapshot: Snapshot, log_start: int, end: int) -> bool:
    """Whether the snapshot can seed window p given output partition p's log start and end
    offsets now: its offset must lie in [log_start, end]. Beyond the end, the topic was
    recreated or truncated; before the log start, records it does not reflect were deleted."""
    return log_start <= snapshot.offset <= end

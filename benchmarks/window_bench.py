"""Benchmark of the dedupe window (pipeline/state/_window.py): memory, throughput, rebuild.

Usage: ``.venv/bin/python benchmarks/window_bench.py [--messages 5000000] [--quick]``

Each measurement runs in its own subprocess (``--child NAME``) so RSS figures are not polluted by
the other measurements or by the parent; RSS is read from /proc/self/status (VmRSS).

* memory: RSS before creating the window and after filling it with ``messages`` new messages.
  Hashes are generated in chunks of 10 000 and each chunk is dropped after its batch: the window
  keeps the hash int objects as its dict keys, exactly as in production where they come from
  per-batch lists. (Prebuilding one big list before the baseline would be wrong: the window would
  share the list's int objects and the figure would leave out the 32-byte keys.) The figure
  includes everything the window allocates (dicts, keys, hint table).
* flat: a window of ``messages`` capacity fed 10x ``messages`` new keys; RSS at 1x, 5x, 10x.
Throughput and rebuild time are per CPU-second of the measuring process (time.process_time),
wall-clock figures are printed next to them: on a shared machine the wall clock also counts
other processes' load.

* checks: a window pre-filled to capacity with new keys, then ``check_batch`` over batches of
  1 000 events of a realistic mix (message life cycles SENT -> DELIVERED etc., interleaved,
  ~10% duplicates, ~2% stale); the verdict counts must equal what was injected.
* rebuild: ``message_hash`` + ``load_batch`` over the emitted events of ``messages`` messages
  (1.5 events per message), from key bytes; only hashing and loading are timed.
* snapshot: the same fill into a keyed window (``hash_key``; keyed vs plain hash cost per key),
  then a snapshot file saved and loaded (pipeline/state/_snapshot.py): the copy a periodic
  snapshot takes on the loop (``Window.frozen``, checked to dump the same bytes), dump, write
  with fsync, load (read, checksums, restore), and the file's size; the loaded window must be
  byte-equal and see the saved messages as duplicates. Alone: ``--child snapshot --messages N``.

Ends with ``window bytes_per_msg=<n> checks_per_s=<n> rebuild_5m_s=<n>``; exits 1 if a check
of what was measured fails. ``run(quick)`` returns the figures for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.core import DUPLICATE, EMIT, STALE, Unpacked, pack  # noqa: E402
from pipeline.state import Window, message_hash, message_hashes  # noqa: E402
from schemas._event import STATUS_INDEX  # noqa: E402

CHUNK = 10_000
#: Hashes like message_hash's: 60 bits, each a 32-byte int object (random.getrandbits(60) would
#: make 48-byte ones and inflate the memory figure by 16 bytes per message).
MASK60 = (1 << 60) - 1
GENERATIONS = 8
QUICK_MESSAGES = 300_000

PENDING, SENT, UNKNOWN = STATUS_INDEX["PENDING"], STATUS_INDEX["SENT"], STATUS_INDEX["UNKNOWN"]
DELIVERED, UNDELIVERED = STATUS_INDEX["DELIVERED"], STATUS_INDEX["UNDELIVERED"]
EXPIRED, REJECTED = STATUS_INDEX["EXPIRED"], STATUS_INDEX["REJECTED"]


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class CheckFailed(Exception):
    pass


def _fill(w: Window, rnd: random.Random, count: int, now: int) -> list[float]:
    """Feed ``count`` new messages (60-bit hashes), in chunks that are then dropped.

    Returns the CPU time (s, of this thread: the wall clock would also count preemption by other
    processes) of each load_batch call.
    """
    done = 0
    statuses = [SENT] * CHUNK
    providers = [i % 5 for i in range(CHUNK)]
    bits = rnd.getrandbits
    load = w.load_batch
    clock = time.thread_time
    times: list[float] = []
    while done < count:
        k = min(CHUNK, count - done)
        hashes = [bits(64) & MASK60 for _ in range(k)]
        t0 = clock()
        load(hashes, statuses[:k], providers[:k], now)
        times.append(clock() - t0)
        done += k
    return times


# -- child measurements ------------------------------------------------------------------------


def child_memory(messages: int) -> dict[str, Any]:
    rnd = random.Random(1)
    before = rss_bytes()
    w = Window(max_messages=messages, generations=GENERATIONS)
    _fill(w, rnd, messages, 1_000)
    while w.unreleased:
        w.check_batch([], [], [], 1_000)
    after = rss_bytes()
    held = len(w)
    if held != messages or sum(w.counters.evicted_by_count) != 0:
        raise CheckFailed(f"memory: holds {held} of {messages}, evicted {w.counters.as_dict()}")
    return {
        "rss_before": before,
        "rss_after": after,
        "held": held,
        "bytes_per_msg": (after - before) / held,
    }


def _lifecycle_data(rnd: random.Random, now_s: int) -> int:
    """The lifecycle data of a typical message: PENDING, SENT, DELIVERED within minutes."""
    sent = now_s + rnd.randrange(1, 60)
    entries = [(PENDING + 1, now_s - rnd.randrange(0, 5)), (SENT + 1, sent)]
    entries.append((DELIVERED + 1, sent + rnd.randrange(1, 900)))
    return pack(Unpacked(False, now_s, entries))


def child_memory_states(messages: int) -> dict[str, Any]:
    """child_memory with every message's lifecycle data held too (the state topic on)."""
    rnd = random.Random(1)
    before = rss_bytes()
    w = Window(max_messages=messages, generations=GENERATIONS, lifecycle=True)
    done = 0
    statuses = [SENT] * CHUNK
    providers = [i % 5 for i in range(CHUNK)]
    now_s = 1_717_484_400
    set_state = w.set_state
    while done < messages:
        k = min(CHUNK, messages - done)
        hashes = [rnd.getrandbits(64) & MASK60 for _ in range(k)]
        w.load_batch(hashes, statuses[:k], providers[:k], now_s * 1000)
        for h in hashes:
            set_state(h, _lifecycle_data(rnd, now_s))
        done += k
        now_s += 1
    after = rss_bytes()
    held = len(w)
    if held != messages or not w.state_of(hashes[-1]):
        raise CheckFailed(f"memory-states: holds {held} of {messages}, or no data")
    return {
        "rss_before": before,
        "rss_after": after,
        "held": held,
        "bytes_per_msg": (after - before) / held,
    }


def child_flat(messages: int) -> dict[str, Any]:
    rnd = random.Random(2)
    w = Window(max_messages=messages, generations=GENERATIONS)
    base = rss_bytes()
    points: dict[str, int] = {}
    fed = 0
    times: list[float] = []
    for mult in (1, 5, 10):
        times += _fill(w, rnd, mult * messages - fed, 1_000)
        fed = mult * messages
        points[f"{mult}x"] = rss_bytes()
        if len(w) > messages:
            raise CheckFailed(f"flat: holds {len(w)} > {messages}")
    evicted = sum(w.counters.evicted_by_count)
    if evicted + len(w) != fed:
        raise CheckFailed(f"flat: evicted {evicted} + held {len(w)} != fed {fed}")
    if w.unreleased > 2 * messages // GENERATIONS + 2 * CHUNK + 1024:
        raise CheckFailed(f"flat: unreleased backlog {w.unreleased}")
    growth = (points["10x"] - points["1x"]) / points["1x"]
    if growth > 0.10:
        raise CheckFailed(f"flat: RSS grew {growth:.1%} from 1x to 10x: {points}")
    return {
        "rss_base": base,
        **points,
        "held": len(w),
        "unreleased": w.unreleased,
        "growth_1x_10x": growth,
        "worst_call_s": max(times),
        "median_call_s": statistics.median(times),
    }


def make_workload(
    rnd: random.Random, n_events: int
) -> tuple[list[int], list[int], list[int], int, int]:
    """Interleaved message life cycles with injected duplicates and stale reports.

    Returns hashes, statuses, providers, injected duplicates, injected stale. A duplicate repeats
    one of its message's statuses later; a stale report is a late UNKNOWN after a final (UNKNOWN
    is otherwise only in the SENT -> UNKNOWN life cycle, which gets no stale injection).
    """
    lifecycles = (
        ((SENT, DELIVERED), 60),
        ((PENDING, SENT, DELIVERED), 20),
        ((DELIVERED,), 10),
        ((SENT, UNDELIVERED), 4),
        ((SENT, EXPIRED), 2),
        ((SENT, UNKNOWN), 2),
        ((SENT, REJECTED, DELIVERED), 2),  # two different finals: both emitted
    )
    cycles = [c for c, _ in lifecycles]
    weights = [w for _, w in lifecycles]
    timed: list[tuple[int, int, int, int, int]] = []  # (time, seq, hash, status, provider)
    dups = stale = 0
    t = 0
    seq = 0
    while len(timed) < n_events:
        h = rnd.getrandbits(64) & MASK60
        p = rnd.randrange(5)
        cycle = rnd.choices(cycles, weights)[0]
        at = t
        times = []
        for s in cycle:
            at += rnd.randint(1, 20_000)
            timed.append((at, seq, h, s, p))
            seq += 1
            times.append((at, s))
        if rnd.random() < 0.24:  # ~10% of all events end up duplicates
            at0, s = rnd.choice(times)
            timed.append((at0 + rnd.randint(1, 20_000), seq, h, s, p))
            seq += 1
            dups += 1
        if cycle[-1] != UNKNOWN and UNKNOWN not in cycle and rnd.random() < 0.04:
            timed.append((at + rnd.randint(1, 20_000), seq, h, UNKNOWN, p))
            seq += 1
            stale += 1
        t += 3
    timed.sort()
    return ([e[2] for e in timed], [e[3] for e in timed], [e[4] for e in timed], dups, stale)


def child_checks(messages: int, n_events: int) -> dict[str, Any]:
    rnd = random.Random(3)
    w = Window(max_messages=messages, generations=GENERATIONS)
    _fill(w, rnd, messages, 1_000)  # steady state: full, evicting while measured
    while w.unreleased:
        w.check_batch([], [], [], 1_000)
    hashes, statuses, providers, dups, stale = make_workload(rnd, n_events)
    n = len(hashes)
    batches = [
        (hashes[i : i + 1000], statuses[i : i + 1000], providers[i : i + 1000])
        for i in range(0, n, 1000)
    ]
    verdicts = bytearray()
    check = w.check_batch
    now = 2_000
    c0 = time.process_time()
    t0 = time.perf_counter()
    for hs, ss, ps in batches:
        verdicts += check(hs, ss, ps, now)
        now += 1
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    got = {
        "emit": verdicts.count(EMIT),
        "dup": verdicts.count(DUPLICATE),
        "stale": verdicts.count(STALE),
    }
    want = {"emit": n - dups - stale, "dup": dups, "stale": stale}
    if got != want:
        raise CheckFailed(f"checks: verdicts {got} != injected {want}")
    c = w.counters
    if (sum(c.duplicates), sum(c.stale)) != (dups, stale):
        raise CheckFailed(f"checks: counters {c.as_dict()} != injected {want}")
    return {
        "events": n,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "checks_per_s": n / cpu,
        "checks_per_s_wall": n / elapsed,
        **got,
    }


def child_rebuild(messages: int) -> dict[str, Any]:
    rnd = random.Random(4)
    w = Window(max_messages=messages, generations=GENERATIONS)
    load = w.load_batch
    events = 0
    elapsed = 0.0
    cpu = 0.0
    sample: list[tuple[bytes, int, int]] = []
    done = 0
    now = 1_000
    while done < messages:
        k = min(CHUNK, messages - done)
        keys: list[bytes] = []
        statuses: list[int] = []
        providers: list[int] = []
        for j in range(done, done + k):
            p = j % 5
            key = b"%d:%016x-%d" % (p, rnd.getrandbits(64), j)
            if j & 1:  # half the messages have two emitted statuses
                keys += (key, key)
                statuses += (SENT, DELIVERED)
                providers += (p, p)
            else:
                keys.append(key)
                statuses.append(DELIVERED)
                providers.append(p)
        sample.append((keys[-1], statuses[-1], providers[-1]))
        c0 = time.process_time()
        t0 = time.perf_counter()
        hashes = message_hashes(keys)
        load(hashes, statuses, providers, now)
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        events += len(keys)
        done += k
        now += 1
    held = len(w)
    evicted = sum(w.counters.evicted_by_count)
    if held + evicted != messages or sum(w.counters.emitted) != 0:
        raise CheckFailed(f"rebuild: held {held} + evicted {evicted} != {messages}")
    tail = sample[-50:]
    verdicts = w.check_batch(
        [message_hash(k) for k, _, _ in tail], [s for _, s, _ in tail], [p for _, _, p in tail], now
    )
    if verdicts != bytearray([DUPLICATE]) * len(tail):
        raise CheckFailed(f"rebuild: reloaded events not seen as duplicates: {list(verdicts)}")
    return {
        "messages": messages,
        "events": events,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "held": held,
        "evicted": evicted,
    }


def child_snapshot(messages: int) -> dict[str, Any]:
    """A keyed window filled like the rebuild's (1.5 events per message), then saved as a
    snapshot file and loaded back (pipeline/state/_snapshot.py): dump, write (with fsync) and
    load (read, checksums, restore), in CPU and wall seconds; bytes of the file."""
    import tempfile

    from pipeline.state import encode_snapshot, load_snapshot, write_snapshot

    rnd = random.Random(5)
    w = Window(max_messages=messages, generations=GENERATIONS, hash_key=os.urandom(16))
    hash_cpu = plain_cpu = 0.0
    sample: list[bytes] = []
    done = 0
    now = 1_000
    while done < messages:
        k = min(CHUNK, messages - done)
        keys: list[bytes] = []
        statuses: list[int] = []
        for j in range(done, done + k):
            key = b"%d:%016x-%d" % (j % 5, rnd.getrandbits(64), j)
            keys += (key, key) if j & 1 else (key,)
            statuses += (SENT, DELIVERED) if j & 1 else (DELIVERED,)
        sample.append(keys[-1])
        c0 = time.process_time()
        hashes = w.hashes(keys)
        c1 = time.process_time()
        message_hashes(keys)
        plain_cpu += time.process_time() - c1
        hash_cpu += c1 - c0
        w.load_batch(hashes, statuses, [int(key[:1]) for key in keys], now)
        done += k
        now += 1
    events = sum(1 + (j & 1) for j in range(messages))

    def timed(f: Any) -> tuple[Any, float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        out = f()
        return out, time.process_time() - c0, time.perf_counter() - t0

    # What a periodic snapshot costs the loop: the copy the worker thread then dumps.
    frozen, copy_cpu, copy_wall = timed(w.frozen)
    with tempfile.TemporaryDirectory(dir=ROOT) as state:
        data, dump_cpu, dump_wall = timed(lambda: encode_snapshot("g", "t", 0, w, 1, 1))
        if encode_snapshot("g", "t", 0, frozen, 1, 1) != data:
            raise CheckFailed("snapshot: the window's frozen copy dumps other bytes")
        _, write_cpu, write_wall = timed(lambda: write_snapshot(state, "g", "t", 0, data))
        snap, load_cpu, load_wall = timed(
            lambda: load_snapshot(state, "g", "t", 0, messages, w.ttl_ms)
        )
    if snap is None or snap.window.dump() != data[len(data) - len(w.dump()) :]:
        raise CheckFailed("snapshot: the loaded window differs from the saved one")
    verdicts = snap.window.check_batch(
        snap.window.hashes(sample), [DELIVERED] * len(sample), [int(k[:1]) for k in sample], now
    )
    if verdicts != bytearray([DUPLICATE]) * len(sample):
        raise CheckFailed(f"snapshot: saved messages not seen as duplicates: {list(verdicts)}")
    return {
        "messages": messages,
        "held": len(w),
        "bytes": len(data),
        "keyed_hash_us": hash_cpu / events * 1e6,
        "plain_hash_us": plain_cpu / events * 1e6,
        "copy_cpu": copy_cpu,
        "copy_wall": copy_wall,
        "dump_cpu": dump_cpu,
        "dump_wall": dump_wall,
        "write_cpu": write_cpu,
        "write_wall": write_wall,
        "load_cpu": load_cpu,
        "load_wall": load_wall,
    }


CHILDREN = {
    "memory": lambda m, q: child_memory(m),
    "memory-states": lambda m, q: child_memory_states(m),
    "flat": lambda m, q: child_flat(m),
    "checks": lambda m, q: child_checks(m, 200_000 if q else 2_000_000),
    "rebuild": lambda m, q: child_rebuild(m),
    "snapshot": lambda m, q: child_snapshot(m),
}


def _spawn(name: str, messages: int, quick: bool) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        name,
        "--messages",
        str(messages),
    ] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CheckFailed(f"{name}: child failed ({proc.returncode}):\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool, messages: int | None = None) -> dict[str, float]:
    """Run every measurement (each in a subprocess); raises CheckFailed on a failed check."""
    if messages is None:
        messages = QUICK_MESSAGES if quick else 5_000_000
    mb = 1024 * 1024
    print(
        f"window bench: python {platform.python_version()} ({platform.machine()}), "
        f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}, "
        f"messages={messages:,}, generations={GENERATIONS}, {'quick' if quick else 'full'}",
        flush=True,
    )
    mem = _spawn("memory", messages, quick)
    print(
        f"  memory : RSS {mem['rss_before'] / mb:.1f} MiB -> {mem['rss_after'] / mb:.1f} MiB "
        f"holding {mem['held']:,} messages = {mem['bytes_per_msg']:.1f} bytes/message",
        flush=True,
    )
    mem_states = _spawn("memory-states", messages, quick)
    print(
        f"  memory with lifecycle data (3 statuses each): RSS {mem_states['rss_before'] / mb:.1f}"
        f" MiB -> {mem_states['rss_after'] / mb:.1f} MiB = "
        f"{mem_states['bytes_per_msg']:.1f} bytes/message",
        flush=True,
    )
    flat = _spawn("flat", messages, quick)
    print(
        f"  flat   : fed 10x{messages:,} new keys; RSS 1x {flat['1x'] / mb:.1f} MiB, "
        f"5x {flat['5x'] / mb:.1f} MiB, 10x {flat['10x'] / mb:.1f} MiB "
        f"({flat['growth_1x_10x']:+.1%}); held {flat['held']:,}, "
        f"unreleased {flat['unreleased']:,}; slowest load_batch of {CHUNK:,} new keys "
        f"{flat['worst_call_s'] * 1e3:.0f} ms CPU (median {flat['median_call_s'] * 1e3:.0f} ms)",
        flush=True,
    )
    chk = _spawn("checks", messages, quick)
    print(
        f"  checks : {chk['events']:,} events in batches of 1000 against a full window: "
        f"{chk['checks_per_s']:,.0f} checks/s per CPU-second "
        f"({chk['checks_per_s_wall']:,.0f}/s wall); emit {chk['emit']:,}, dup {chk['dup']:,}, "
        f"stale {chk['stale']:,}, as injected",
        flush=True,
    )
    reb = _spawn("rebuild", messages, quick)
    rebuild_5m = reb["cpu_seconds"] * 5_000_000 / messages
    print(
        f"  rebuild: {reb['messages']:,} messages ({reb['events']:,} events) hashed + loaded "
        f"in {reb['cpu_seconds']:.2f} CPU-s ({reb['seconds']:.2f} s wall, "
        f"{reb['events'] / reb['cpu_seconds']:,.0f} events/CPU-s); held "
        f"{reb['held']:,}, evicted by count {reb['evicted']:,}"
        + ("" if messages == 5_000_000 else f"; scaled to 5M: {rebuild_5m:.2f} s"),
        flush=True,
    )
    snap = _spawn("snapshot", messages, quick)
    print(
        f"  snapshot: {snap['held']:,} messages held, file {snap['bytes'] / mb:.1f} MiB; "
        f"copy on the loop {snap['copy_cpu']:.2f} CPU-s ({snap['copy_wall']:.2f} s wall), "
        f"dump {snap['dump_cpu']:.2f} CPU-s ({snap['dump_wall']:.2f} s wall), write+fsync "
        f"{snap['write_wall']:.2f} s wall, load (read, checksums, restore) "
        f"{snap['load_cpu']:.2f} CPU-s ({snap['load_wall']:.2f} s wall); keyed hash "
        f"{snap['keyed_hash_us']:.2f} µs/key vs hash() {snap['plain_hash_us']:.2f}",
        flush=True,
    )
    print(
        f"  (rates are per CPU-second of the measuring process, so that other load on the "
        f"machine does not count; load average now {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return {
        "bytes_per_msg": round(mem["bytes_per_msg"], 1),
        "bytes_per_msg_states": round(mem_states["bytes_per_msg"], 1),
        "rss_growth_1x_10x": round(flat["growth_1x_10x"], 4),
        "checks_per_s": round(chk["checks_per_s"]),
        "checks_per_s_wall": round(chk["checks_per_s_wall"]),
        "rebuild_5m_s": round(rebuild_5m, 2),
        "snapshot_load_s": round(snap["load_cpu"], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument(
        "--messages",
        type=int,
        default=None,
        help=f"window capacity (default 5000000, {QUICK_MESSAGES} with --quick)",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, under 30 s")
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        messages = args.messages or (QUICK_MESSAGES if args.quick else 5_000_000)
        try:
            result = CHILDREN[args.child](messages, args.quick)
        except CheckFailed as e:
            print(f"CHECK FAILED: {e}", file=sys.stderr)
            return 1
        print(json.dumps(result))
        return 0
    try:
        r = run(args.quick, args.messages)
    except CheckFailed as e:
        print(f"CHECK FAILED: {e}", file=sys.stderr)
        return 1
    print(
        f"window bytes_per_msg={r['bytes_per_msg']} "
        f"bytes_per_msg_states={r['bytes_per_msg_states']} checks_per_s={r['checks_per_s']} "
        f"rebuild_5m_s={r['rebuild_5m_s']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Micro-benchmark of pipeline/kafka/_partitioner.py against aiokafka's pure-Python murmur2.

Usage: ``.venv/bin/python benchmarks/partitioner_bench.py [--keys 200000] [--partitions 12]
[--repeat 5] [--candidates]``

Keys are realistic output record keys ``<provider>:<message_key>`` in the shapes the decoders
produce (Yunpian sids, Tencent serials, uSpeedo session|phone, SMS Partner id|phone, Ultiroam
sn|port|phone|ref|time), in the provider mix of ``benchmarks/corpus.py`` (19-70 bytes, mean ~35),
deterministic from ``--seed``. Each figure is the best of ``--repeat`` timed passes over all keys,
as nanoseconds of CPU time per key:

* ``aiokafka``: ``(aiokafka.partitioner.murmur2(k) & 0x7fffffff) % n`` per key (what
  ``DefaultPartitioner`` computes, without its list indexing);
* ``partitions_for``: ours, one call for the whole list (the producer's per-batch path);
* ``partition_for`` / ``murmur2``: ours, one call per key.

Every output of ours is checked equal to aiokafka's (murmur2 as unsigned 32-bit); the script exits
1 on any difference. ``--candidates`` also times the rejected alternatives named in the module
docstring: a tuned pure-Python murmur2, bounded LRU caches in front of it (with their hit rate on
a key stream where a message's key recurs once per further status, as often as in the corpus,
at a uniformly random distance of up to a quarter of the stream: generous to a cache, since
statuses of one message are seconds to minutes apart, millions of keys at our output rate), and
a numpy vectorised batch (the best variant found, see ``numpy_partitions``) if numpy is importable.

Ends with ``partitioner ours_ns_per_key=<x> aiokafka_ns_per_key=<y> speedup=<y/x>``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import platform
import random
import struct
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka.partitioner import murmur2 as aiokafka_murmur2  # noqa: E402

from pipeline.kafka import murmur2, partition_for, partitions_for  # noqa: E402

#: Share of output keys per provider (emitted events of ``corpus.py --seed 1``).
PROVIDER_MIX = (
    ("uspeedo", 0.311),
    ("yunpian", 0.255),
    ("tencent", 0.167),
    ("smspartner", 0.157),
    ("ultiroam", 0.110),
)
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = "0123456789ABCDEF"
_PHONES = (("86", 11), ("1", 10), ("44", 10), ("33", 9), ("91", 10), ("49", 11), ("55", 11))


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10 ** (n - 1), 10**n))


def _phone(rng: random.Random) -> str:
    cc, n = rng.choice(_PHONES)
    return f"+{cc}{_digits(rng, n)}"


def realistic_key(rng: random.Random) -> bytes:
    """One output record key in the shape a decoder gives it."""
    provider = rng.choices([p for p, _ in PROVIDER_MIX], [w for _, w in PROVIDER_MIX])[0]
    if provider == "yunpian":
        key = str(16_741_236_146 + rng.randrange(3_000_000))
    elif provider == "tencent":
        key = f"{rng.randrange(1000, 10000)}:{_digits(rng, rng.randint(25, 28))}"
    elif provider == "uspeedo":
        session = "".join(rng.choices(_LETTERS, k=8)) + _digits(rng, 5)
        key = f"{session}|{_phone(rng)}"
    elif provider == "smspartner":
        key = f"{_digits(rng, 7)}|+33{rng.choice('67')}{_digits(rng, 8)}"
    else:
        sn = "-".join("".join(rng.choices(_HEX, k=4)) for _ in range(4))
        when = (
            f"2024-03-{rng.randint(10, 31)} {rng.randint(10, 23)}:{rng.randint(10, 59)}:"
            f"{rng.randint(10, 59)}"
        )
        key = f"{sn}|{rng.randint(1, 32)}|{_phone(rng)}|{rng.randint(1, 999)}|{when}"
    return f"{provider}:{key}".encode()


def realistic_keys(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [realistic_key(rng) for _ in range(n)]


def status_stream(n: int, seed: int = 1) -> list[bytes]:
    """``n`` keys where a message's key recurs once per further status: 1.185 keys per message on
    average, as the emitted events of ``corpus.py --seed 1`` (275 788 keys, 232 612 distinct),
    each follow-up a uniformly random 1..n/4 keys after the message's first status."""
    rng = random.Random(seed)
    placed: list[tuple[float, bytes]] = []
    position = 0.0
    while position < n:
        key = realistic_key(rng)
        statuses = rng.choices((1, 2, 3), (0.83, 0.155, 0.015))[0]
        placed.append((position, key))
        for _ in range(statuses - 1):
            placed.append((position + rng.uniform(1, n / 4), key))
        position += 1.185
    placed.sort(key=lambda item: item[0])
    return [key for _, key in placed[:n]]


def best_ns_per_key(fn: Callable[[], Any], count: int, repeat: int) -> tuple[float, Any]:
    """Best of ``repeat`` passes, in CPU time of this process (``time.process_time``), so that
    other load on the machine inflates the figure less than wall-clock time would."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best / count * 1e9, out


# --- rejected candidates (--candidates) -------------------------------------------------------

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C
_FORMATS = [f"<{i}I" for i in range(256)]


def tuned_pure_murmur2(data: bytes) -> int:
    """Pure-Python murmur2 (unsigned), blocks read by one ``struct.unpack_from``."""
    n = len(data)
    h = _SEED ^ n
    blocks = n >> 2
    if blocks:
        fmt = _FORMATS[blocks] if blocks < 256 else f"<{blocks}I"
        for k in struct.unpack_from(fmt, data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = n & 3
    if tail:
        h = ((h ^ int.from_bytes(data[n - tail :], "little")) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def numpy_partitions(np: Any, keys: Sequence[bytes], n: int) -> list[int]:
    """One vectorised murmur2 over a batch. Keys are zero-padded to the longest and sorted by
    length, so the pass over 4-byte column j touches only the keys with more than j blocks (a
    suffix) plus, for the tail, those with exactly j blocks (a zero-padded tail word XORs in
    exactly the tail bytes)."""
    u32, m = np.uint32, np.uint32(_M)
    count = len(keys)
    lens = np.fromiter(map(len, keys), dtype=np.int64, count=count)
    order = np.argsort(lens, kind="stable")
    lens = lens[order]
    width = (int(lens[-1]) + 3) & ~3
    padded = b"".join([k.ljust(width, b"\0") for k in keys])
    words = np.frombuffer(padded, dtype="<u4").reshape(count, width // 4)[order]
    h = lens.astype(u32) ^ u32(_SEED)
    blocks = lens >> 2
    first_longer = np.searchsorted(blocks, np.arange(width // 4), side="right")
    for j in range(width // 4):
        start = int(first_longer[j])  # rows start.. have more than j blocks
        if start < count:
            k = words[start:, j] * m
            k ^= k >> 24
            k *= m
            rows = h[start:]
            rows *= m
            rows ^= k
        lo = int(first_longer[j - 1]) if j else 0  # rows lo..start have exactly j blocks
        if lo < start:
            tail = (lens[lo:start] & 3) != 0
            rows = h[lo:start]
            rows[tail] = (rows[tail] ^ words[lo:start, j][tail]) * m
    h ^= h >> 13
    h *= m
    h ^= h >> 15
    out = np.empty(count, dtype=u32)
    out[order] = (h & u32(0x7FFFFFFF)) % u32(n)
    return list(out.tolist())


def candidates(keys: list[bytes], n: int, repeat: int, seed: int, expected: list[int]) -> bool:
    ok = True
    count = len(keys)

    def report(name: str, ns: float, out: list[int], extra: str = "") -> None:
        nonlocal ok
        same = out == expected
        ok &= same
        print(f"  {name:<44} {ns:9.0f} ns/key{extra}{'' if same else '  MISMATCH'}")

    ns, out = best_ns_per_key(
        lambda: [(tuned_pure_murmur2(k) & 0x7FFFFFFF) % n for k in keys], count, repeat
    )
    report("pure Python, tuned", ns, out)

    stream = status_stream(count, seed)
    stream_expected = partitions_for(stream, n)
    distinct = len(set(stream))
    print(
        f"  status stream: {count} keys, {distinct} distinct "
        f"(an unbounded cache hits at most {1 - distinct / count:.1%})"
    )
    for size in (4096, 65536):
        cached = functools.lru_cache(maxsize=size)(tuned_pure_murmur2)

        def run(cached: Any = cached) -> list[int]:
            cached.cache_clear()
            return [(cached(k) & 0x7FFFFFFF) % n for k in stream]

        ns, out = best_ns_per_key(run, count, repeat)
        info = cached.cache_info()
        rate = info.hits / max(1, info.hits + info.misses)
        same = out == stream_expected
        ok &= same
        print(
            f"  {f'lru_cache({size}) over tuned pure Python':<44} {ns:9.0f} ns/key"
            f"  hit rate {rate:.1%}{'' if same else '  MISMATCH'}"
        )

    try:
        np = importlib.import_module("numpy")  # not a dependency of the project
    except ImportError:
        print("  numpy: not installed, skipped")
        return ok
    for batch in (200, 2000, 20000):

        def batches(batch: int = batch) -> list[int]:
            return [
                p
                for i in range(0, count, batch)
                for p in numpy_partitions(np, keys[i : i + batch], n)
            ]

        ns, out = best_ns_per_key(batches, count, repeat)
        report(f"numpy {np.__version__}, batches of {batch}", ns, out)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--candidates",
        action="store_true",
        help="also time the rejected alternatives (cache, numpy, tuned Python)",
    )
    args = parser.parse_args(argv)
    n, repeat = args.partitions, args.repeat

    keys = realistic_keys(args.keys, args.seed)
    count = len(keys)
    lengths = sorted(map(len, keys))
    print(
        f"python {platform.python_version()} on {platform.machine()}, {count} keys of "
        f"{lengths[0]}-{lengths[-1]} bytes (mean {sum(lengths) / count:.1f}), "
        f"{n} partitions, best of {repeat}"
    )

    slow_repeat = max(1, min(repeat, 3))  # aiokafka takes seconds per pass
    ak_ns, ak_parts = best_ns_per_key(
        lambda: [(aiokafka_murmur2(k) & 0x7FFFFFFF) % n for k in keys], count, slow_repeat
    )
    ak_hashes = [aiokafka_murmur2(k) for k in keys]

    ours_ns, ours_parts = best_ns_per_key(lambda: partitions_for(keys, n), count, repeat)
    one_ns, one_parts = best_ns_per_key(lambda: [partition_for(k, n) for k in keys], count, repeat)
    hash_ns, hashes = best_ns_per_key(lambda: [murmur2(k) for k in keys], count, repeat)

    ok = ours_parts == ak_parts and one_parts == ak_parts
    ok &= [h & 0xFFFFFFFF for h in hashes] == ak_hashes
    print(f"  {'aiokafka murmur2 + & 0x7fffffff % n':<44} {ak_ns:9.0f} ns/key")
    print(
        f"  {'ours partitions_for(keys, n)':<44} {ours_ns:9.0f} ns/key"
        f"  ({ak_ns / ours_ns:.0f}x faster)"
    )
    print(
        f"  {'ours partition_for(k, n), per key':<44} {one_ns:9.0f} ns/key"
        f"  ({ak_ns / one_ns:.0f}x faster)"
    )
    print(f"  {'ours murmur2(k), per key':<44} {hash_ns:9.0f} ns/key")
    print(f"  outputs equal to aiokafka's: {'yes' if ok else 'NO'}")
    if args.candidates:
        print("candidates:")
        ok &= candidates(keys, n, repeat, args.seed, ak_parts)
    print(
        f"partitioner ours_ns_per_key={ours_ns:.0f} aiokafka_ns_per_key={ak_ns:.0f} "
        f"speedup={ak_ns / ours_ns:.0f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Kafka's default partition for a keyed record, computed fast.

An output record keyed ``b"<provider>:<message_key>"`` must land on the partition the Java
client's default partitioner picks for it (``BuiltInPartitioner.partitionForKey``)::

    Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions     # toPositive(x) = x & 0x7fffffff

so that our records and any Java producer's agree on where a message's events live.
``Utils.murmur2`` is Austin Appleby's 32-bit MurmurHash2 with seed ``0x9747b28c``: little-endian
4-byte blocks, the 1-3 tail bytes mixed as unsigned bytes (Java masks them with ``& 0xff``), one
multiply after the tail, and the final ``>>> 13, * m, >>> 15`` mix; :func:`murmur2` returns it as
the signed 32-bit ``int`` Java returns.

Choice: the ``murmurhash2`` package (PyPI, MIT, a Rust/PyO3 extension). Its ``murmurhash2(key,
seed)`` is that exact algorithm, read in its source: LE ``u32`` blocks, ``u8`` tail XORed in
then one multiply, same final mix. It returns the value as unsigned 32-bit, and equality with
Java was checked bit for bit on 111 000+ keys of every length 0..200 and every tail length,
random bytes and non-ASCII UTF-8 included (tests/pipeline/kafka/test_partitioner.py runs
``Utils.murmur2`` and ``BuiltInPartitioner.partitionForKey`` from kafka-clients 4.3.1).
It ships ``abi3`` wheels (one per platform, any CPython >= 3.6) for manylinux x86_64, i686 and
aarch64, musllinux aarch64, macOS (universal2) and Windows, so ``pip install`` never builds it on
the platforms this project runs on (glibc Linux x86_64/aarch64, macOS); it ships a ``py.typed``
stub. No pure-Python fallback is kept, as no supported platform lacks a wheel. (Without one, i.e.
Alpine/musl on x86_64, free-threaded CPython builds, or other CPUs, pip would build the sdist,
which needs a Rust toolchain; the install would fail there, so a fallback would not help anyway.)

Measured per key (``.venv/bin/python benchmarks/partitioner_bench.py --candidates``; CPU time,
best of 7 passes over 200 000 realistic keys of 19-70 bytes, mean 35; CPython 3.11, a 2-core
AMD EPYC VM shared with other work, so the spread of 5 runs is given):

============================================================  ==============
approach                                                       ns per key
============================================================  ==============
aiokafka ``murmur2`` (pure Python) + ``& 0x7fffffff % n``      6 800-8 300
pure Python, tuned (``struct.unpack_from`` for the blocks)     2 900-4 300
LRU cache (4 096 / 65 536 entries) over the tuned Python;
hit rate 1.7 % / 15.6 %                                        3 500-5 300
numpy 2.4 vectorised batch (keys sorted by length, padded),
batches of 200 / 2 000 / 20 000                                ~1 100 / 310-350 / 250-330
``murmurhash2``, one call per key (:func:`partition_for`)        250-410
``murmurhash2`` over ``map`` (:func:`partitions_for`)            210-330
============================================================  ==============

:func:`partitions_for` is 24-39x faster than aiokafka's pure Python, with bit-identical output.
A cache cannot pay: an output key recurs only once per further status of the same message, so a
key stream with the corpus's repeat rate (``benchmarks/corpus.py --seed 1 --receipts 300000``
emits 275 788 keys, 232 612 distinct: an unbounded cache hits 15.7 % at most; at our output rate
a message's statuses are millions of keys apart, so a bounded one hits far less) saves at most
that share of a pure-Python hash that costs 10x the extension. numpy pays for padding
variable-length keys into a matrix and one pass per 4-byte column; it only draws level with
the extension on batches of 10 000+ keys, loses clearly below 2 000, and would be a large new
dependency. The extension's cost is nearly all call overhead (~150 ns per call, of which the hash
itself is a few ns), so the batch form drives it with ``map`` and ``itertools.repeat`` (no
Python-level frame per key) and does the partition arithmetic in one comprehension.

Keys are ``bytes``; a record without a key never comes here (the Java client then uses its
sticky partitioner, not a hash).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Final

from murmurhash2 import murmurhash2 as _murmurhash2

#: Seed of Kafka's ``Utils.murmur2``.
SEED: Final = 0x9747B28C


def murmur2(data: bytes) -> int:
    """``org.apache.kafka.common.utils.Utils.murmur2(data)``: a signed 32-bit int."""
    h = _murmurhash2(data, SEED)
    return h - ((h & 0x80000000) << 1)


def partition_for(key: bytes, num_partitions: int) -> int:
    """The partition the Java default partitioner picks for ``key`` among ``num_partitions``."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    return (_murmurhash2(key, SEED) & 0x7FFFFFFF) % num_partitions


def partitions_for(keys: Sequence[bytes], num_partitions: int) -> list[int]:
    """:func:`partition_for` of each key, in order (the producer's per-batch fast path)."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    return [(h & 0x7FFFFFFF) % num_partitions for h in map(_murmurhash2, keys, repeat(SEED))]

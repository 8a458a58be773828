"""pipeline/kafka/_partitioner.py against the Kafka Java client itself and against aiokafka.

* Java: tests/java/Murmur2Vectors.java runs ``Utils.murmur2`` and
  ``BuiltInPartitioner.partitionForKey`` from the kafka-clients jar of the suite's broker cache
  (``${XDG_CACHE_HOME:-~/.cache}/sms-pipeline/kafka-<version>/libs``; fetched with Maven by
  ``tools.broker.fetch_kafka`` when absent) on 111 000+ keys: realistic output keys, and keys
  of every length 0..200 (so every tail length mod 4) made of random bytes, ASCII and non-ASCII
  UTF-8, plus sign-bit traps (all 0x80 / 0xff bytes) and a few long keys. These tests FAIL, never
  skip, when Java 17+ (with javac), Maven or the jar is unavailable.
* tests/pipeline/kafka/murmur2_vectors.tsv: a few hundred keys with the Java client's values,
  checked without Java, so a regression shows on any machine. Format, one key a line, tab-separated:
  ``key  murmur2  partition@3  partition@7  partition@12  partition@64``; keys are UTF-8 without
  tab, CR or LF. One test checks the file is exactly what the Java program prints for its keys.
  To add keys, append them (first column only) and regenerate::

      cut -f1 tests/pipeline/kafka/murmur2_vectors.tsv > /tmp/keys
      javac -d /tmp/m2 -cp "$JARS" tests/java/Murmur2Vectors.java
      java -cp "$JARS:/tmp/m2" Murmur2Vectors 3 7 12 64 < /tmp/keys \\
          > tests/pipeline/kafka/murmur2_vectors.tsv

  with ``JARS=<libs>/kafka-clients-<v>.jar:<libs>/slf4j-api-<v>.jar``.
* aiokafka: its pure-Python ``murmur2`` and ``DefaultPartitioner`` on hypothesis samples.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.kafka import murmur2, partition_for, partitions_for
from tools import broker as _broker

HERE = Path(__file__).resolve().parent
JAVA_SOURCE = HERE.parents[1] / "java" / "Murmur2Vectors.java"
VECTORS = HERE / "murmur2_vectors.tsv"
PARTITION_COUNTS = (1, 3, 7, 12, 64)
VECTOR_FILE_COUNTS = (3, 7, 12, 64)
MAX_LENGTH = 200

#: Kafka's own expectations (clients/src/test/.../common/utils/UtilsTest.java, testMurmur2).
KAFKA_UTILS_TEST = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

Row = tuple[int, list[int]]  # (murmur2, [partition for each partition count])


# --- keys ------------------------------------------------------------------------------------

_PHONES = (("86", 11), ("1", 10), ("44", 10), ("33", 9), ("91", 10), ("49", 11))


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10 ** (n - 1), 10**n))


def realistic_key(rng: random.Random) -> bytes:
    """An output record key ``<provider>:<message_key>`` as the decoders build it."""
    cc, width = rng.choice(_PHONES)
    phone = f"+{cc}{_digits(rng, width)}"
    shape = rng.randrange(6)
    if shape == 0:
        key = f"yunpian:{16_741_236_146 + rng.randrange(3_000_000)}"
    elif shape == 1:
        key = f"tencent:{rng.randrange(1000, 10000)}:{_digits(rng, rng.randint(25, 28))}"
    elif shape == 2:
        session = "".join(rng.choices("abcdefghijkLMNOPQRSTUVWXYZ", k=8)) + _digits(rng, 5)
        key = f"uspeedo:{session}|{phone}"
    elif shape == 3:
        key = f"smspartner:{_digits(rng, 7)}|{phone}"
    elif shape == 4:
        sn = rng.randbytes(8).hex("-", 2).upper()
        key = (
            f"ultiroam:{sn}|{rng.randint(1, 32)}|{phone}|{rng.randint(1, 999)}"
            f"|2024-03-31 0{rng.randrange(10)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}"
        )
    else:
        key = f"tencent:{rng.randrange(1000, 10000)}:{_digits(rng, 12)}-é"  # non-ASCII
    return key.encode()


#: Maps any byte to a printable ASCII character (no tab, CR, LF).
_PRINTABLE = bytes(0x20 + b % 95 for b in range(256))


def _char(rng: random.Random, width: int) -> str:
    """A printable character whose UTF-8 encoding is ``width`` bytes (no tab, CR, LF)."""
    if width == 1:
        return chr(rng.randint(0x20, 0x7E))
    if width == 2:
        return chr(rng.randint(0xA0, 0x7FF))
    if width == 3:
        while True:
            code = rng.randint(0x800, 0xFFFD)
            if not 0xD800 <= code <= 0xDFFF and code not in (0x2028, 0x2029, 0xFEFF):
                return chr(code)
    return chr(rng.randint(0x10000, 0x10FFFF))


def utf8_key(rng: random.Random, length: int, *, ascii_share: float = 0.3) -> bytes:
    """Valid UTF-8 of exactly ``length`` bytes, mostly multi-byte characters."""
    chars: list[str] = []
    left = length
    while left:
        width = 1 if rng.random() < ascii_share else rng.randint(1, min(4, left))
        chars.append(_char(rng, width))
        left -= width
    key = "".join(chars).encode()
    assert len(key) == length
    return key


@functools.cache
def java_check_keys() -> tuple[bytes, ...]:
    """The 111 000+ keys compared with the Java client (any bytes: sent to Java as hex)."""
    rng = random.Random(20240331)
    keys = [realistic_key(rng) for _ in range(40_000)]
    # Non-ASCII UTF-8 of exact lengths, cut at character boundaries out of one random text.
    text = utf8_key(rng, 100_000, ascii_share=0.2)
    starts = [i for i, byte in enumerate(text) if byte & 0xC0 != 0x80]
    for length in range(MAX_LENGTH + 1):
        keys += [rng.randbytes(length) for _ in range(150)]
        for _ in range(150):
            start = rng.choice(starts[:-MAX_LENGTH])
            piece = text[start : start + length].decode(errors="ignore").encode()
            keys.append(piece + b"~" * (length - len(piece)))
        keys += [rng.randbytes(length).translate(_PRINTABLE) for _ in range(50)]
        keys += [b"\x00" * length, b"\x7f" * length, b"\x80" * length, b"\xff" * length]
    keys += [rng.randbytes(n) for n in (255, 256, 1000, 4099, 65_537)]
    return tuple(keys)


# --- Java ------------------------------------------------------------------------------------


def kafka_clients_classpath() -> list[Path]:
    """kafka-clients and slf4j-api jars from the suite's broker cache, fetched if absent.

    Globs ``<cache>/sms-pipeline/kafka-*/libs/kafka-clients-*.jar`` (the pinned broker version
    first); when there is none, ``tools.broker.fetch_kafka`` downloads that version's jars
    with Maven into ``<cache>/sms-pipeline/kafka-<version>/libs`` (locked against a concurrent
    download by the broker fixture). Raises when Maven or the network fails.
    """
    root = _broker.cache_root()
    jars = sorted(root.glob(f"kafka-{_broker.KAFKA_VERSION}/libs/kafka-clients-*.jar"))
    jars = jars or sorted(root.glob("kafka-*/libs/kafka-clients-*.jar"))
    if not jars:
        libs = _broker.fetch_kafka(_broker.KAFKA_VERSION)
        jars = sorted(libs.glob("kafka-clients-*.jar"))
    if not jars:
        pytest.fail(
            f"no kafka-clients jar under {root} even after fetching Kafka {_broker.KAFKA_VERSION}"
        )
    jar = jars[-1]
    slf4j = sorted(jar.parent.glob("slf4j-api-*.jar"))  # Utils' static init logs through it
    if not slf4j:
        pytest.fail(f"no slf4j-api jar next to {jar}")
    return [jar, slf4j[-1]]


def find_javac(java: str) -> str:
    candidates = [Path(java).resolve().parent / "javac"]
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "javac")
    found = [str(c) for c in candidates if os.access(c, os.X_OK)]
    javac = found[0] if found else shutil.which("javac")
    if not javac:
        pytest.fail(
            f"javac (a JDK 17+) is required to build {JAVA_SOURCE.name}; none next to "
            f"{java}, in JAVA_HOME or on PATH"
        )
    return javac


@dataclass(frozen=True)
class JavaVectors:
    """The compiled Murmur2Vectors program and how to run it."""

    java: str
    classpath: str

    def run(self, stdin: bytes, args: Sequence[str]) -> bytes:
        done = subprocess.run(
            [self.java, "-cp", self.classpath, "Murmur2Vectors", *args],
            input=stdin,
            capture_output=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(
                f"Murmur2Vectors exited {done.returncode}:\n{done.stderr.decode(errors='replace')}"
            )
        return done.stdout

    def compute(self, keys: Sequence[bytes], counts: Sequence[int]) -> list[Row]:
        """``(murmur2, [partition for each count])`` of each key, by the Java client."""
        stdin = b"".join(k.hex().encode() + b"\n" for k in keys)
        lines = self.run(stdin, ["--hex", *map(str, counts)]).split(b"\n")
        assert lines.pop() == b"", "output must end with a newline"
        rows = []
        for key, line in zip(keys, lines, strict=True):
            fields = line.split(b"\t")
            assert fields[0] == key.hex().encode(), "Java echoed another key"
            assert len(fields) == 2 + len(counts)
            rows.append((int(fields[1]), [int(f) for f in fields[2:]]))
        return rows


@pytest.fixture(scope="module")
def java_vectors(tmp_path_factory: pytest.TempPathFactory) -> JavaVectors:
    """Murmur2Vectors.java compiled against kafka-clients. Java, javac, Maven or the jar
    missing is an error (the run fails), never a skip."""
    try:
        java = _broker.find_java()
        classpath = kafka_clients_classpath()
    except _broker.BrokerError as exc:
        pytest.fail(
            f"the Java reference vectors need a JDK 17+ and the kafka-clients jar "
            f"(KAFKA_BOOTSTRAP_SERVERS does not help here): {exc}"
        )
    javac = find_javac(java)
    classes = tmp_path_factory.mktemp("murmur2-java")
    compiled = subprocess.run(
        [javac, "-d", str(classes), "-cp", os.pathsep.join(map(str, classpath)), str(JAVA_SOURCE)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    if compiled.returncode != 0:
        pytest.fail(f"javac failed ({compiled.returncode}):\n{compiled.stdout}{compiled.stderr}")
    return JavaVectors(java, os.pathsep.join([*map(str, classpath), str(classes)]))


def _mismatches(keys: Sequence[bytes], ours: Sequence[int], java: Sequence[int]) -> list[str]:
    bad = [f"{k!r}: ours {o}, Java {j}" for k, o, j in zip(keys, ours, java, strict=True) if o != j]
    return bad[:10] + ([f"... {len(bad)} in all"] if len(bad) > 10 else [])


@pytest.fixture(scope="module")
def java_results(java_vectors: JavaVectors) -> tuple[Sequence[bytes], list[Row]]:
    keys = java_check_keys()
    return keys, java_vectors.compute(keys, PARTITION_COUNTS)


def test_java_check_keys_cover_every_length_and_tail() -> None:
    keys = java_check_keys()
    assert len(keys) >= 100_000
    non_ascii_utf8 = {len(k) for k in keys if not k.isascii() and _is_utf8(k)}
    assert set(range(2, MAX_LENGTH + 1)) <= non_ascii_utf8  # so every tail length mod 4
    assert set(range(MAX_LENGTH + 1)) <= {len(k) for k in keys if not _is_utf8(k)} | {0}
    assert (
        sum(
            1
            for k in keys
            if 15 <= len(k) <= 40
            and k.split(b":")[0] in {b"yunpian", b"tencent", b"uspeedo", b"smspartner"}
        )
        > 20_000
    )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_murmur2_equals_java_utils_murmur2(
    java_results: tuple[Sequence[bytes], list[Row]],
) -> None:
    keys, rows = java_results
    java = [h for h, _ in rows]
    ours = [murmur2(k) for k in keys]
    assert ours == java, "\n".join(_mismatches(keys, ours, java))


@pytest.mark.parametrize(
    "index", range(len(PARTITION_COUNTS)), ids=[f"{n}-partitions" for n in PARTITION_COUNTS]
)
def test_partitions_equal_java_builtin_partitioner(
    java_results: tuple[Sequence[bytes], list[Row]],
    index: int,
) -> None:
    keys, rows = java_results
    count = PARTITION_COUNTS[index]
    java = [parts[index] for _, parts in rows]
    batch = partitions_for(keys, count)
    assert batch == java, "\n".join(_mismatches(keys, batch, java))
    single = [partition_for(k, count) for k in keys]
    assert single == java, "\n".join(_mismatches(keys, single, java))
    if count > 1:
        assert len(set(java)) == count  # the keys really spread over every partition


def test_vector_file_is_what_java_prints(java_vectors: JavaVectors) -> None:
    content = VECTORS.read_bytes()
    keys = b"".join(line.split(b"\t")[0] + b"\n" for line in content.split(b"\n")[:-1])
    assert java_vectors.run(keys, [str(n) for n in VECTOR_FILE_COUNTS]) == content


# --- static vectors (no Java) ----------------------------------------------------------------


def read_vectors() -> list[tuple[bytes, int, list[int]]]:
    rows = []
    for line in VECTORS.read_bytes().split(b"\n")[:-1]:
        key, value, *parts = line.split(b"\t")
        assert len(parts) == len(VECTOR_FILE_COUNTS)
        rows.append((key, int(value), [int(p) for p in parts]))
    return rows


def test_vector_file_covers_the_cases() -> None:
    rows = read_vectors()
    keys = [k for k, _, _ in rows]
    assert 300 <= len(rows) <= 1000
    assert len(set(keys)) == len(keys)
    assert b"" in keys
    assert {len(k) % 4 for k in keys if not k.isascii()} == {0, 1, 2, 3}
    assert set(range(65)) <= {len(k) for k in keys}
    assert max(map(len, keys)) >= MAX_LENGTH
    assert set(KAFKA_UTILS_TEST) <= set(keys)
    assert any(v < 0 for _, v, _ in rows) and any(v >= 0 for _, v, _ in rows)


def test_static_vectors_without_java() -> None:
    rows = read_vectors()
    keys = [k for k, _, _ in rows]
    assert [murmur2(k) for k in keys] == [v for _, v, _ in rows]
    for index, count in enumerate(VECTOR_FILE_COUNTS):
        expected = [parts[index] for _, _, parts in rows]
        assert partitions_for(keys, count) == expected
        assert [partition_for(k, count) for k in keys] == expected
    assert partitions_for(keys, 1) == [0] * len(keys)


@pytest.mark.parametrize(("key", "expected"), KAFKA_UTILS_TEST.items())
def test_kafka_utils_test_vectors(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


# --- aiokafka (pure Python) ------------------------------------------------------------------

keys_st = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=80).map(str.encode),
    st.builds(realistic_key, st.randoms(use_true_random=False)),
)


@settings(max_examples=1500, deadline=None)
@given(keys_st, st.integers(min_value=1, max_value=2000))
def test_agrees_with_aiokafka(key: bytes, count: int) -> None:
    value = murmur2(key)
    assert -(2**31) <= value < 2**31
    assert value & 0xFFFFFFFF == aiokafka_murmur2(key)
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert partition_for(key, count) == expected
    assert partitions_for([key], count) == [expected]


@settings(max_examples=300, deadline=None)
@given(st.lists(keys_st, max_size=60), st.integers(min_value=1, max_value=300))
def test_batch_agrees_with_aiokafka(keys: list[bytes], count: int) -> None:
    partitions = list(range(count))
    partitioner = DefaultPartitioner()
    assert partitions_for(keys, count) == [partitioner(k, partitions, partitions) for k in keys]


# --- contract --------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, -1])
def test_rejects_non_positive_partition_counts(count: int) -> None:
    with pytest.raises(ValueError, match="num_partitions"):
        partition_for(b"k", count)
    with pytest.raises(ValueError, match="num_partitions"):
        partitions_for([b"k"], count)


def test_batch_accepts_any_sequence_and_empty() -> None:
    assert partitions_for([], 12) == []
    keys = (b"yunpian:16741236146", b"", b"abc")
    assert partitions_for(keys, 12) == [partition_for(k, 12) for k in keys]

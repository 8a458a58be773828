"""The window's lifecycle data: kept through the window's rules, dumps and restores."""

from __future__ import annotations

import struct

import pytest

from pipeline.state import Window

KEY = b"k" * 16


def test_data_survives_updates_moves_and_keeps_the_verdicts() -> None:
    w = Window(1000, 86_400_000, generations=4)
    h = [10, 11]
    w.check_batch(h, [0, 0], [0, 0], 1)
    w.set_state(10, 1 << 100)
    w.set_state(11, 5)
    # An update in place (the current generation) keeps the data and the emitted statuses.
    assert list(w.check_batch([10, 10], [1, 1], [0, 0], 2)) == [0, 1]
    assert w.state_of(10) == 1 << 100
    # Moved from an older generation by a new status (rotation by time: ttl/G = 21.6e6 ms).
    assert list(w.check_batch([11], [3], [0], 30_000_000)) == [0]
    assert w.generations_held == 2 and 11 in w._dicts[0]
    assert w.state_of(11) == 5
    # The rules still see the statuses: stale and duplicate as before.
    assert list(w.check_batch([11, 11, 10], [1, 3, 0], [0, 0, 0], 30_000_001)) == [2, 1, 1]
    assert w.state_of(99) == 0
    w.set_state(99, 7)  # not held: nothing to keep it with
    assert w.state_of(99) == 0 and len(w) == 2


def test_dump_keeps_the_data_and_a_restored_window_goes_on() -> None:
    w = Window(1000, 86_400_000, hash_key=KEY)
    w.check_batch([1, 2, 3], [0, 1, 3], [0, 1, 2], 5)
    w.set_state(1, (1 << 300) + 12345)  # longer than most: up to 255 bytes
    w.set_state(3, 9)
    back = Window.restore(w.dump())
    assert back.dump() == w.dump()
    assert [back.state_of(h) for h in (1, 2, 3)] == [(1 << 300) + 12345, 0, 9]
    assert list(back.check_batch([1, 3], [1, 3], [0, 2], 6)) == [0, 1]
    assert back.state_of(1) == (1 << 300) + 12345


def test_a_dump_without_data_still_loads_in_the_old_format() -> None:
    """Format 2 (before lifecycle data): its messages come back with their statuses only."""
    w = Window(1000, 86_400_000, hash_key=KEY)
    w.check_batch([1, 2], [0, 3], [0, 0], 5)
    new = w.dump()
    head2, head3 = struct.Struct("<4sHQQHqBHQBB"), struct.Struct("<4sHQQHqBHQBBQ")
    fields = head3.unpack_from(new)
    assert fields[1] == 3 and fields[-1] == 0
    old = head2.pack(fields[0], 2, *fields[2:-1]) + new[head3.size :]
    back = Window.restore(old)
    assert list(back.check_batch([1, 2], [0, 0], [0, 0], 6)) == [1, 2]
    assert back.state_of(1) == 0


def test_a_dump_of_another_format_is_refused_naming_it() -> None:
    w = Window(1000, 86_400_000, hash_key=KEY)
    data = bytearray(w.dump())
    data[4:6] = (9).to_bytes(2, "little")
    with pytest.raises(ValueError, match="format version 9, this build reads"):
        Window.restore(bytes(data))


def test_corrupt_lifecycle_data_is_refused() -> None:
    w = Window(1000, 86_400_000, hash_key=KEY)
    w.check_batch([1], [0], [0], 5)
    w.set_state(1, 1 << 50)
    data = w.dump()
    cut = data.index((1 << 50).to_bytes(7, "little"))
    with pytest.raises(ValueError, match="not a window dump"):
        Window.restore(data[:cut] + b"\x00" + data[cut + 1 :] + b"\x00")


def test_a_lifecycle_window_takes_a_smaller_hint_table_and_keeps_it_through_a_dump() -> None:
    plain = Window(100_000, 86_400_000, hash_key=KEY)
    made = Window(100_000, 86_400_000, hash_key=KEY, lifecycle=True)
    assert len(made._hint) * 2 == len(plain._hint)
    made.check_batch([1], [0], [0], 5)
    made.set_state(1, 3 << 70)
    back = Window.restore(made.dump())
    assert back.lifecycle and len(back._hint) == len(made._hint) and back.state_of(1) == 3 << 70
    assert not Window.restore(plain.dump()).lifecycle


def test_a_frozen_copy_dumps_what_the_window_held_while_the_window_goes_on() -> None:
    w = Window(1000, 86_400_000, generations=4, hash_key=KEY, lifecycle=True)
    w.check_batch([1, 2, 3], [0, 1, 3], [0, 1, 2], 5)
    w.set_state(1, (1 << 100) + 7)
    before = w.dump()
    frozen = w.frozen()
    # The window goes on: an update in place, a new message, new data, a rotation by time.
    w.check_batch([1, 4], [3, 0], [0, 0], 30_000_000)
    w.set_state(4, 9)
    assert frozen.dump() == before != w.dump()
    back = Window.restore(frozen.dump())
    assert back.state_of(1) == (1 << 100) + 7 and back.state_of(4) == 0

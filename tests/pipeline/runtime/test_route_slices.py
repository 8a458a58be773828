"""The core never holds the event loop for a whole batch of large bodies."""

from __future__ import annotations

import anyio

from pipeline.core import Core, CoreConfig, InputRecord
from pipeline.runtime import SLICE_BYTES, process_in_slices, slices
from pipeline.state import Window


def _yunpian(i: int, pad: int) -> InputRecord:
    reports = ",".join(
        f'{{"sid":{i * 1000 + n},"uid":"u","user_receive_time":"2026-11-30 10:00:00",'
        f'"error_msg":"","mobile":"1380000{n:04d}","report_status":"SUCCESS"}}'
        for n in range(pad)
    )
    body = b"sms_status=" + f"[{reports}]".encode()
    headers = [("provider", b"yunpian"), ("endpoint", b"push")]
    return InputRecord("raw", 0, i, 1_764_496_800_000 + i, headers, body)


def test_slices_bound_bytes_and_keep_order() -> None:
    records = [_yunpian(i, 100) for i in range(400)]
    cuts = slices(records)
    assert len(cuts) > 1
    assert [i for c in cuts for i in range(len(records))[c]] == list(range(len(records)))
    for c in cuts:
        part = records[c]
        assert len(part) == 1 or sum(len(r.value) for r in part) <= SLICE_BYTES


def test_batch_yields_to_the_loop_and_gives_the_same_output() -> None:
    records = [_yunpian(i, 100) for i in range(400)]
    whole = Core(Window(1_000_000, 86_400_000), CoreConfig()).process(records)
    ticks = 0

    async def main() -> tuple[object, int]:
        nonlocal ticks
        done = anyio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await anyio.sleep(0)
            before = ticks
            result = await process_in_slices(Core(Window(1_000_000, 86_400_000)), records)
            during = ticks - before
            done.set()
        return result, during

    result, during = anyio.run(main)
    # The ticker ran between slices: the batch did not hold the loop from start to end.
    assert during >= len(slices(records)) - 1 > 0
    assert len(whole.outputs) == 400 * 100 and not whole.dead_letters
    assert result == whole

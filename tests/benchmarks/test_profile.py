"""The e2e profile's stage classifier: each stack lands in the stage it costs."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.e2e.profile import STAGES, classify_profile, stage_of

LOOP = "run (asyncio/base_events.py:1);Stage.run (pipeline/runtime/_stage.py:206)"


@pytest.mark.parametrize(
    ("stack", "stage"),
    [
        (f"{LOOP};DedupeStage.open_window (pipeline/runtime/_dedupe.py:150)", STAGES[0]),
        (f"{LOOP};Stage.commit (pipeline/runtime/_stage.py:90)", STAGES[1]),
        (
            f"{LOOP};DedupeStage.process (pipeline/runtime/_dedupe.py:230);"
            "passing (pipeline/state/_identities.py:80)",
            STAGES[2],
        ),
        (
            f"{LOOP};Core.process (pipeline/core/_process.py:80);"
            "decode (pipeline/core/providers/tencent.py:10)",
            STAGES[3],
        ),
        (f"{LOOP};emitted_outputs (pipeline/core/_verdicts.py:90)", STAGES[4]),
        (
            f"{LOOP};Sink.write (pipeline/kafka/_sink.py:120);zstd_encode (aiokafka/codec.py:200)",
            STAGES[6],
        ),
        (f"{LOOP};Sink.write (pipeline/kafka/_sink.py:120)", STAGES[7]),
        (f"{LOOP};getmany (aiokafka/consumer/consumer.py:1)", STAGES[8]),
        (f"{LOOP};DedupeStage.process (pipeline/runtime/_dedupe.py:240)", STAGES[9]),
        (LOOP, STAGES[11]),
        (f"{LOOP};Handle._run (asyncio/events.py:80)", "event loop, awaiting"),
        (
            f"{LOOP};DedupeStage.close (pipeline/runtime/_dedupe.py:210);"
            "Window.dump (pipeline/state/_window.py:400)",
            "shutdown (last snapshot, clients closed)",
        ),
        ("_find_and_load (<frozen importlib._bootstrap>:1176)", "start-up (imports)"),
        ("main (somewhere.py:1)", "other"),
    ],
)
def test_stage_of(stack: str, stage: str) -> None:
    assert stage_of(stack.split(";")) == stage


def test_classify_profile_shares(tmp_path: Path) -> None:
    path = tmp_path / "raw.txt"
    path.write_text(
        f"{LOOP};Stage.commit (pipeline/runtime/_stage.py:90) 3\n"
        f"{LOOP};getmany (aiokafka/consumer/consumer.py:1) 1\n"
        "not a sample line\n"
    )
    shares, samples = classify_profile(path)
    assert samples == 4
    assert shares == {STAGES[1]: 0.75, STAGES[8]: 0.25}

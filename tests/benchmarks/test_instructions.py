"""benchmarks/instructions.py without valgrind: the corpus files it writes and each stage's
pass, whose self-check is what keeps a broken tree from reporting a low count."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import pipeline.core
from benchmarks.instructions import PROVIDERS, STAGES, child, write_corpus

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    return write_corpus(seed=2, receipts=3_000, out=tmp_path_factory.mktemp("corpus"))


def test_corpus_files_split_by_provider(corpus: dict[str, tuple[Path, int]]) -> None:
    assert set(corpus) == {"all", *PROVIDERS}
    total = len(pickle.loads(corpus["all"][0].read_bytes()))
    split = sum(
        len(pickle.loads(path.read_bytes())) for name, (path, _) in corpus.items() if name != "all"
    )
    assert 0 < split <= total  # dead letters and non-receipts are left out of the split
    assert sum(n for name, (_, n) in corpus.items() if name != "all") > 0


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_passes_its_check(stage: str, corpus: dict[str, tuple[Path, int]]) -> None:
    child(str(ROOT), str(corpus["all"][0]), stage, 2)


def test_a_pass_that_loses_events_fails(
    corpus: dict[str, tuple[Path, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline.core.emitted_outputs
    monkeypatch.setattr(pipeline.core, "emitted_outputs", lambda *a: real(*a)[1:])
    with pytest.raises(SystemExit, match=r"encode: \d+ results, expected \d+"):
        child(str(ROOT), str(corpus["all"][0]), "encode", 1)

"""docs/operations.md's settings tables are the code's descriptions (tools/settings_table.py)."""

from __future__ import annotations

from pipeline.config import Settings, setting_docs
from tools.settings_table import PAGE, render, table


def test_the_operations_page_shows_the_settings_as_the_code_describes_them() -> None:
    page = PAGE.read_text()
    assert render(page) == page, "run: python -m tools.settings_table --write"


def test_every_setting_has_its_row() -> None:
    rows = table(Settings).splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [doc.flag for doc in setting_docs(Settings)]

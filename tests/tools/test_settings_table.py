"""docs/operations.md's settings tables are the code's descriptions (tools/settings_table.py)."""

from __future__ import annotations

from tools.settings_table import PAGE, render


def test_the_operations_page_shows_the_settings_as_the_code_describes_them() -> None:
    page = PAGE.read_text()
    assert render(page) == page, "run: python -m tools.settings_table --write"

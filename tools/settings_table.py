"""The settings tables of docs/operations.md, generated from the settings' own descriptions.

    python -m tools.settings_table           # print both tables
    python -m tools.settings_table --write   # rewrite them in docs/operations.md

Each table sits between `<!-- settings:NAME -->` and `<!-- /settings:NAME -->`; a test fails
when the page and the code disagree, so a setting is described once, in its field.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Final

import msgspec

from pipeline.config import Settings, setting_docs
from pipeline.ingress import IngressSettings

PAGE: Final = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
TABLES: Final[dict[str, type[msgspec.Struct]]] = {"run": Settings, "ingress": IngressSettings}


def _default(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return "`" + ",".join(map(str, value)) + "`"
    return f"`{value}`"


def table(settings_type: type[msgspec.Struct]) -> str:
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for doc in setting_docs(settings_type):
        meaning = doc.description.replace("|", "\\|")
        rows.append(f"| `{doc.flag}` | `{doc.env}` | {_default(doc.default)} | {meaning} |")
    return "\n".join(rows) + "\n"


def render(page: str) -> str:
    """`page` with every settings table replaced by the generated one."""
    for name, settings_type in TABLES.items():
        pattern = re.compile(rf"(<!-- settings:{name} -->\n).*?(<!-- /settings:{name} -->)", re.S)
        block = pattern.search(page)
        if block is None:
            raise SystemExit(f"{PAGE}: no <!-- settings:{name} --> block")
        rows = block.group(1) + table(settings_type) + block.group(2)
        page = page[: block.start()] + rows + page[block.end() :]
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.settings_table", description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite docs/operations.md")
    args = parser.parse_args(argv)
    if args.write:
        PAGE.write_text(render(PAGE.read_text()))
    else:
        for name, settings_type in TABLES.items():
            print(f"{name}:\n{table(settings_type)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

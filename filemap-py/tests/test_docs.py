"""Every Python example of the documentation runs as printed: the README,
the Python guide, the growth page and the package's own page (its PyPI
description). Each block runs alone, with its region name "demo" replaced
by a unique one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO

PAGES = ["README.md", "docs/python.md", "docs/growth.md", "filemap-py/README.md"]


def python_blocks() -> Iterator[tuple[str, int, str]]:
    for page in PAGES:
        text = (REPO / page).read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 2
            yield page, line, match.group(1)


BLOCKS = list(python_blocks())


def test_every_page_has_a_python_example() -> None:
    assert {page for page, _, _ in BLOCKS} == set(PAGES)


@pytest.mark.parametrize(("page", "line", "code"), BLOCKS, ids=[f"{Path(p).stem}-line{n}" for p, n, _ in BLOCKS])
def test_documented_python_example_runs(name: str, page: str, line: int, code: str) -> None:
    assert '"demo"' in code, f"{page}:{line}: the example should open region \"demo\""
    source = "\n" * (line - 1) + code.replace('"demo"', repr(name))
    exec(compile(source, str(Path(REPO / page)), "exec"), {"__name__": "docs_example"})

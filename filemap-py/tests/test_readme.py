"""The README's Python example runs as printed."""

from __future__ import annotations

import re

from conftest import REPO


def test_readme_python_example_runs(name: str) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    exec(compile(code.group(1).replace('"demo"', repr(name)), "README.md", "exec"), {})

#!/usr/bin/env python3
"""Check the links of the documentation: every relative link in README.md,
CONTRIBUTING.md, CHANGELOG.md, docs/ and the crates' READMEs must name a
file or directory of the repository, and every #anchor a heading of the
page it points to (GitHub's heading ids). Links out of the repository
(http, https, mailto) are not fetched: the check runs offline.

    python3 ci/links.py            # exit status 1 and one line per broken link
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def pages() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    found += sorted(p for p in ROOT.glob("*/README.md"))
    return [p for p in found if p.exists()]


def prose(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with inline code blanked."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    ids: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            ids.add(base if count == 0 else f"{base}-{count}")
    return ids


def main() -> int:
    broken = []
    checked = 0
    for page in pages():
        for number, line in prose(page.read_text(encoding="utf-8")):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # http:, https:, mailto: ...
                checked += 1
                where = f"{page.relative_to(ROOT)}:{number}"
                path, _, anchor = target.partition("#")
                dest = (page.parent / path).resolve() if path else page
                if not dest.exists():
                    broken.append(f"{where}: {target}: no such file")
                    continue
                if ROOT not in dest.parents and dest != ROOT:
                    broken.append(f"{where}: {target}: outside the repository")
                    continue
                if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    broken.append(f"{where}: {target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    for line in broken:
        print(line, file=sys.stderr)
    print(f"links.py: {checked} relative links in {len(pages())} pages, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

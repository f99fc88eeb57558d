"""The repository stands alone: docs and code comments point only to files inside it, and
every relative link in the Markdown docs resolves to a file that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# where the team's specifications and notes lived before they moved into docs/
OUTSIDE = re.compile(r"shared/spec|stack[- ]notes|/work/|\.\./data/|sources\.md(?<!docs/SOURCES\.md)", re.I)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", *patterns],
                         cwd=ROOT, check=True, capture_output=True).stdout.decode()
    return [ROOT / p for p in out.split("\0") if p and (ROOT / p).is_file()]


def test_no_pointer_outside_the_repository():
    hits = []
    for path in _tracked("*.py", "*.md", "*.yaml", "*.yml", "*.txt", "*.sh", "*.toml", "Makefile", "Dockerfile"):
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for match in OUTSIDE.finditer(line):
                if match.group(0).lower() == "sources.md" and "SOURCES.md" in line:
                    continue
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert hits == []


def test_markdown_links_resolve_inside_the_repository():
    broken = []
    for path in _tracked("*.md"):
        for target in _LINK.findall(path.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web page or an anchor of the same file
            resolved = (path.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_contracts_live_in_docs():
    for name in ("SOURCES.md", "OPERATIONS.md"):
        assert (ROOT / "docs" / name).is_file()
    sources = (ROOT / "docs" / "SOURCES.md").read_text()
    for system in ("everflow", "redtrack", "s3_exports"):
        assert f"## {system}" in sources

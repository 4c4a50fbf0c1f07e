"""Every relative link in the project's Markdown documents points at a file that exists, and every
`#anchor` at a heading of its target (as GitHub renders it), so moving a section breaks a test."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "config" / "README.md", ROOT / "tests" / "README.md",
                    *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"^```.*?^```", re.M | re.S)


def github_anchor(heading: str) -> str:
    """GitHub's id of a heading: lower case, punctuation dropped (but '-' and '_'), spaces to '-'."""
    text = re.sub(r"`|\*\*", "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = CODE_BLOCK.sub("", document.read_text())
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(document: Path) -> list[str]:
    return [target for target in LINK.findall(CODE_BLOCK.sub("", document.read_text()))
            if not re.match(r"[a-z]+:", target)]  # http:, https:, mailto:


def test_anchor_rule_matches_github():
    assert github_anchor("Why not faster: the machine's limit") == "why-not-faster-the-machines-limit"
    assert github_anchor("The demo run (`make run` on a fresh clone)") == "the-demo-run-make-run-on-a-fresh-clone"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(document):
    broken = []
    for target in links(document):
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.slow
def test_the_python_api_page_runs_and_prints_what_it_shows(capsys):
    """docs/python-api.md's code runs as it stands, and prints the table the page shows (to the
    page's three decimals; another CPU's round-off may move the last digit by one)."""
    page = (ROOT / "docs" / "python-api.md").read_text()
    code = re.search(r"^```python\n(.*?)^```", page, re.M | re.S).group(1)
    shown = re.search(r"it printed, in \d+ s:\n\n```\n(.*?)```", page, re.S).group(1).splitlines()
    exec(compile(code, "docs/python-api.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == [line.split()[0] for line in shown]
    for got, expected in zip(printed, shown):
        numbers = [[float(x) for x in re.findall(r"\d+\.\d+", line)] for line in (got, expected)]
        assert numbers[0] == pytest.approx(numbers[1], abs=0.0015), (got, expected)

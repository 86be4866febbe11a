"""Links between README.md and docs/: every relative link names a file that
exists and, with a `#fragment`, a heading of that file (GitHub's anchors)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchor(heading):
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    text = FENCE.sub("", path.read_text())
    return {anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.+)$", text, re.M)}


def relative_links(path):
    text = FENCE.sub("", path.read_text())
    return [link for link in LINK.findall(text)
            if not re.match(r"[a-z]+:", link) and not link.startswith("mailto")]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_resolve(path):
    broken = []
    for link in relative_links(path):
        target, _, fragment = link.partition("#")
        target_path = (path.parent / target).resolve() if target else path
        if not target_path.exists():
            broken.append(f"{link}: no file {target_path.relative_to(ROOT)}")
        elif fragment and target_path.suffix == ".md" and fragment not in anchors(target_path):
            broken.append(f"{link}: no heading with anchor #{fragment}")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("heading, expected", [
    ("Where a CPU step goes", "where-a-cpu-step-goes"),
    ("torch.compile on a CPU", "torchcompile-on-a-cpu"),
    ("Fine-tuning a pretrained network", "fine-tuning-a-pretrained-network"),
    ("`compile_for_paper(model)`", "compile_for_papermodel"),
])
def test_anchor_follows_github(heading, expected):
    assert anchor(heading) == expected

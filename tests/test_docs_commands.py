"""Every `python src/train.py ...` command the README, ARCHITECTURE.md and docs/ show composes: the
option names, keys and values it uses exist (as `python src/train.py ... --cfg job` would check),
and it passes the spine's own checks of the composed config."""

import re
import shlex

import pytest

from dlfoundations.config.checks import validate
from dlfoundations.config.compose import compose_config
from tests.helpers import REPO

COMMAND = re.compile(r"python src/train\.py((?: [^`|#\n]+)?)")
# Shown as examples of mistakes: each must fail, and does (see test_reliability and test_inputs).
MISTAKES = {"data.batch_size=abc"}


def documented_commands() -> list[str]:
    found = []
    for doc in [REPO / "README.md", REPO / "ARCHITECTURE.md", *sorted((REPO / "docs").glob("*.md"))]:
        for match in COMMAND.finditer(doc.read_text()):
            args = match.group(1).strip()
            if any(mark in args for mark in ("<", "...", "[")) or args in MISTAKES:
                continue  # a template (<run dir>, [key=value ...]), not a command
            found.append(args)
    return sorted(set(found))


def first_job(args: str) -> list[str]:
    """The overrides of a command's first job: -m dropped, each sweep list's first value."""
    overrides = []
    for arg in shlex.split(args):
        if arg in ("-m", "--multirun"):
            continue
        key, _, value = arg.partition("=")
        if "," in value and not value.startswith(("[", "{", "'", '"')) and "(" not in value:
            value = value.split(",")[0]
        overrides.append(f"{key}={value}" if _ else arg)
    return overrides


def test_the_docs_show_commands():
    assert len(documented_commands()) >= 20


@pytest.mark.parametrize("args", documented_commands())
def test_every_documented_command_composes(args, tmp_path):
    cfg = compose_config(first_job(args), str(tmp_path))
    validate(cfg)
    assert cfg.model._target_ and cfg.data._target_


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_of_the_docs_resolves():
    """A link to a file that moved, or to a heading that was renamed, fails here (named)."""
    docs = [REPO / "README.md", REPO / "ARCHITECTURE.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for doc in docs:
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, broken

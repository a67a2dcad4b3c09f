"""The documentation a new user reads: README.md and docs/*.md. Every relative link leads to a
file (and heading) that exists, and every `zoo ...` command shown names a real command with
real flags, as the CLI itself (typer's click commands) defines them."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def page_ids() -> list[str]:
    return [p.relative_to(REPO).as_posix() for p in pages()]


# -- links -----------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    found = set()
    in_code = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(github_anchor(line.lstrip("#")))
    return found


def without_code(text: str) -> str:
    """The text without fenced blocks and `code spans` (a link in them is not a link)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_every_relative_link_leads_somewhere(page):
    broken = []
    for target in LINK.findall(without_code(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


# -- commands --------------------------------------------------------------------------------


@cache
def cli_options() -> dict[str, set[str]]:
    """Each command's flags (its own, --help, and the root's) from the typer app."""
    import typer.main

    from zoo.cli import app

    root = typer.main.get_command(app)
    common = {o for p in root.params for o in p.opts} | {"--help", "-h"}
    return {name: common | {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
            for name, cmd in root.commands.items()}


LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")


def indented_blocks(text: str) -> list[str]:
    """Markdown's indented code blocks: after a blank line, indented 4 spaces, or 8 inside a
    list (4 there continue the list item's text)."""
    blocks, current, in_list, blank_before = [], [], False, True
    for line in text.splitlines():
        depth = 8 if in_list else 4
        if line.startswith(" " * depth) and (current or blank_before):
            current.append(line)
            continue
        if current:
            blocks.append("\n".join(current))
            current = []
        if line.strip():
            if not line.startswith(" "):
                in_list = bool(LIST_ITEM.match(line))
            elif LIST_ITEM.match(line):
                in_list = True
        blank_before = not line.strip()
    if current:
        blocks.append("\n".join(current))
    return blocks


def code_texts(text: str) -> list[str]:
    """The fenced and indented code blocks (continuation lines joined) and the code spans."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    spans = re.findall(r"`([^`\n]+)`", prose)
    return [b.replace("\\\n", " ") for b in blocks + indented_blocks(prose)] + spans


ZOO_CALL = re.compile(r"(?:^|[\s/;&|(])zoo\s+(?!\[)([^\n#]*)")


def zoo_commands(text: str) -> list[list[str]]:
    """Each `zoo COMMAND ...` shown, as its words (quoted values kept whole)."""
    found = []
    for code in code_texts(text):
        for line in code.splitlines():
            for m in ZOO_CALL.finditer(line):
                rest = re.split(r"\s(?:&&|\|\||\||;)\s", m.group(1))[0]
                try:
                    words = shlex.split(rest)
                except ValueError:
                    words = rest.split()
                if words and re.fullmatch(r"--?[a-z][\w-]*|[a-z][a-z-]*", words[0]):
                    found.append(words)
    return found


def command_problems(words: list[str]) -> list[str]:
    options = cli_options()
    root_flags = options.get("run", set()) & {"--debug", "--version", "--help", "-h"}
    while words and words[0] in root_flags:
        words = words[1:]
    if not words:
        return []
    name, args = words[0], words[1:]
    if name in ("...", "…", "COMMAND"):  # any command: `zoo --debug ...`
        return []
    if name not in options:
        return [f"zoo {name}: no such command"]
    flags = [w.split("=", 1)[0] for w in args if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", w)]
    return [f"zoo {name} {f}: no such flag" for f in flags if f not in options[name]]


@pytest.mark.parametrize("page", pages(), ids=page_ids())
def test_every_zoo_command_shown_is_real(page):
    commands = zoo_commands(page.read_text(encoding="utf-8"))
    problems = [p for words in commands for p in command_problems(words)]
    assert not problems, f"{page.name}: " + "; ".join(sorted(set(problems)))


def test_the_checker_catches_a_wrong_command_and_flag():
    text = "Run `zoo run --task detect --bakend yolov8` or\n\n    zoo trian --data DIR\n"
    problems = sorted(p for words in zoo_commands(text) for p in command_problems(words))
    assert problems == ["zoo run --bakend: no such flag", "zoo trian: no such command"]
    # a list item's continuation lines are prose, even indented 4 spaces; 8 make code there
    listed = "- **Pixels.** Decoded once,\n    and zoo reads the file again.\n\n        zoo tarin\n"
    assert [p for words in zoo_commands(listed) for p in command_problems(words)] == ["zoo tarin: no such command"]


def test_the_readme_is_short_and_every_docs_page_starts_with_an_example():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= README_MAX_LINES
    for page in sorted((REPO / "docs").glob("*.md")):
        body = [line for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
        first_code = next((i for i, line in enumerate(body) if line.startswith(("    ", "```"))), None)
        # the title, at most a two-line sentence, then the runnable example
        assert first_code is not None and first_code <= 3, f"{page.name}: no runnable example at its top"

"""Every command's help: a summary, examples that run as written, and help text for every option.

The commands are found by walking `clipit --help` (groups included), so a new command is checked too.
An example or a description that names an option the command does not have fails, as does a command
without examples or an option without a help line.
"""

from __future__ import annotations

import re
import shlex
from functools import cache

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app

runner = CliRunner()
WIDTH = 250  # wide enough that no help cell wraps
GLOBAL = {"--config", "-c", "--set", "-s", "--help", "-h"}
OPTION = re.compile(r"(?<![\w/.=-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


@cache
def help_text(words: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    return result.stdout


def panel_rows(text: str, title: str) -> list[list[str]]:
    """The rows of a help panel ('Options', 'Commands', 'Arguments'), each split into its cells."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("╭─ "):
            inside = line.startswith(f"╭─ {title} ")
            continue
        if inside and line.startswith("│"):
            cells = re.split(r"\s{2,}", line.strip("│ ").strip())
            rows.append(["", *cells] if line.startswith("│  ") else cells)  # a wrapped line: no first cell
    return rows


@cache
def commands(words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf command under `words`, as its words (`('download', 'cc3m')`)."""
    found = []
    for row in panel_rows(help_text(words), "Commands"):
        if not row[0]:  # a wrapped description line
            continue
        sub = (*words, row[0])
        children = commands(sub)
        found.extend(children or [sub])
    return found


def options(words: tuple[str, ...]) -> dict[str, str]:
    """Option (long and short) -> its help cell, as `clipit WORDS --help` lists them."""
    named = {}
    for row in panel_rows(help_text(words), "Options"):
        names = [cell for cell in row if re.fullmatch(r"-{1,2}[a-zA-Z][\w-]*", cell)]
        for name in names:
            named[name] = row[-1]
    return named


def description(words: tuple[str, ...]) -> str:
    """The text above the panels (summary, details and examples)."""
    return help_text(words).split("╭─")[0]


def examples(words: tuple[str, ...]) -> list[list[str]]:
    """Each example after 'Examples:', split into its `clipit ...` commands (`&&` chains and `# comments`)."""
    text = description(words)
    assert "Examples:" in text, f"clipit {' '.join(words)} --help has no Examples"
    block = re.sub(r"\\\s*\n", " ", text.split("Examples:", 1)[1])  # a `\` continues the line
    found = []
    for line in block.splitlines():
        line = line.split("  #", 1)[0].strip()
        if not line:
            continue
        for part in re.split(r"&&|\|", line):
            tokens = shlex.split(part.replace("> ", " > ").replace("<", " < "))
            if tokens and tokens[0] == "clipit":
                found.append(tokens[1 : tokens.index(">") if ">" in tokens else None])
    return found


def split_command(tokens: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """(command words, the rest) for the longest known command the tokens start with."""
    rest = [t for t in tokens if t not in ("--config", "-c")]  # `clipit --config F cmd` also works
    known = set(commands())
    for n in (2, 1):
        for start in range(len(rest)):
            if tuple(rest[start : start + n]) in known:
                return tuple(rest[start : start + n]), tokens
    raise AssertionError(f"no known command in example: clipit {' '.join(tokens)}")


def test_the_walk_finds_every_command():
    assert {"train", "build-shards", "export", "init", "demo"} <= {c[0] for c in commands()}
    assert {("download", "cc3m"), ("eval", "retrieval"), ("config", "show")} <= set(commands())


@pytest.mark.parametrize("words", commands(), ids=" ".join)
def test_help_has_a_summary_examples_and_help_for_every_option(words):
    lines = [line.strip() for line in description(words).splitlines() if line.strip()]
    assert lines[0].startswith(f"Usage: clipit {' '.join(words)}")
    assert len(lines) > 1 and not lines[1].startswith("Examples"), f"clipit {' '.join(words)}: no summary"
    runs = examples(words)
    assert any(split_command(tokens)[0] == words for tokens in runs), (
        f"no example runs clipit {' '.join(words)}"
    )
    mine = options(words)
    for name, text in mine.items():
        assert text and not text.startswith(("<", "[")), f"clipit {' '.join(words)} {name} has no help text"


@pytest.mark.parametrize("words", commands(), ids=" ".join)
def test_every_option_named_in_the_help_exists(words):
    for tokens in examples(words):
        command, args = split_command(tokens)
        known = set(options(command)) | GLOBAL
        named = {t.split("=", 1)[0] for t in args if OPTION.fullmatch(t.split("=", 1)[0])}
        assert named <= known, f"example `clipit {' '.join(tokens)}` uses {sorted(named - known)}"
    text = description(words).split("Examples:", 1)[0]
    mentioned = {m for m in OPTION.findall(text) if not re.search(rf"clipit [a-z -]*{m}", text)}
    missing = mentioned - set(options(words)) - GLOBAL
    assert not missing, f"clipit {' '.join(words)} --help mentions {sorted(missing)}, which it does not have"

"""`python -m clipit.config.docs_update`: regenerate docs/config.md from the config models."""

from pathlib import Path

from clipit import atomic
from clipit.config.reference import render_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"

if __name__ == "__main__":
    atomic.write_text(DOCS, render_markdown())
    print(f"wrote {DOCS}")

"""The persistent translation cache: nothing is ever paid for twice, across runs.

One SQLite table keyed by (backend, source language, target language, text). Every batch of results is
committed as soon as it arrives, so a run killed with `kill -9` keeps everything it was paid for and the
rerun asks the provider only for the rest. WAL mode keeps a commit cheap and survives a killed writer.
Failures are never cached: a rerun tries them again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from clipit.errors import DataError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    backend TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    text TEXT NOT NULL,
    translation TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (backend, source, target, text)
) WITHOUT ROWID
"""
_LOOKUP_CHUNK = 500  # SQLite's default limit on bound parameters is 999 (older builds)


def cache_path(path: str | Path) -> Path:
    """The configured cache path with `~` expanded."""
    return Path(path).expanduser()


class TranslationCache:
    """Translations of one (backend, source, target) triple; use it from one thread."""

    def __init__(self, path: str | Path, backend: str, source: str, target: str):
        self.path = cache_path(path)
        self.key = (backend, source, target)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable against a killed process
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise DataError(
                f"translation cache {self.path} cannot be opened: {exc}",
                "set translate.cache to a writable path, or delete the file if it is not a clipit cache",
            ) from None

    def lookup(self, texts: Iterable[str]) -> dict[str, str]:
        """The cached translations among `texts`."""
        unique = list(dict.fromkeys(texts))
        found: dict[str, str] = {}
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT text, translation FROM translations WHERE backend=? AND source=? AND target=? "
                f"AND text IN ({marks})",
                (*self.key, *chunk),
            )
            found.update(rows)
        return found

    def store(self, translations: Mapping[str, str]) -> None:
        """Insert and commit at once (this commit is what makes a kill lose nothing)."""
        if not translations:
            return
        now = time.time()
        self._db.executemany(
            "INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?, ?)",
            [(*self.key, text, translation, now) for text, translation in translations.items()],
        )
        self._db.commit()

    def count(self) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM translations WHERE backend=? AND source=? AND target=?", self.key
        ).fetchone()
        return int(row[0])

    def texts(self) -> Sequence[str]:
        rows = self._db.execute(
            "SELECT text FROM translations WHERE backend=? AND source=? AND target=?", self.key
        )
        return [row[0] for row in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TranslationCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

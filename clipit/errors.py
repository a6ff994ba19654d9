"""One exception family for every error a user can fix.

Each error carries a message (what is wrong, naming the file, key or row) and a hint (what to do).
The CLI turns a `ClipitError` into one line on stderr and exit code 2; anything else is a bug (exit 1).
"""

from __future__ import annotations


class ClipitError(Exception):
    """An error caused by input, config or environment that the user can fix."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class ConfigError(ClipitError):
    """A config file, a `--set` override or a config value is wrong."""


class ManifestError(ClipitError):
    """A manifest or shard file is missing, unreadable or of another schema."""


class DataError(ClipitError):
    """Input data (images, captions, annotation files) cannot be used."""


class ModelError(ClipitError):
    """A checkpoint cannot be found, read or matched to the architecture."""


class NetworkError(ClipitError):
    """A remote service or hub cannot be reached or refuses the request."""

"""Packing many captions into one request, and checking that the reply splits back.

Providers charge (and rate-limit) per request, and deep-translator sends one request per text. Joining
captions with a separator (a newline by default: every provider keeps line breaks) cuts the number of
requests by the number of captions that fit under the provider's character limit. The reply is split on
the same separator; when the count of parts differs or a part is empty, the provider has merged or
dropped lines and the caller sends those captions one by one instead.
"""

from __future__ import annotations

from collections.abc import Sequence


def normalise(text: str) -> str:
    """One line, single spaces: what is translated and what the cache is keyed by."""
    return " ".join(text.split())


def pack(texts: Sequence[str], max_chars: int, separator: str) -> list[list[str]]:
    """Group texts in order so that each joined group has at most `max_chars` characters.

    A text longer than the limit, or one that contains the separator, goes alone (the provider may
    still reject it; that is a per-caption failure, not a packing one).
    """
    packs: list[list[str]] = []
    current: list[str] = []
    size = 0
    for text in texts:
        alone = len(text) > max_chars or separator in text
        extra = len(text) + (len(separator) if current else 0)
        if current and (alone or size + extra > max_chars):
            packs.append(current)
            current, size = [], 0
        if alone:
            packs.append([text])
            continue
        size += len(text) + (len(separator) if current else 0)
        current.append(text)
    if current:
        packs.append(current)
    return packs


def join(texts: Sequence[str], separator: str) -> str:
    return separator.join(texts)


def split(reply: str, count: int, separator: str) -> list[str] | None:
    """The `count` translations in a packed reply, or None when the reply does not split back."""
    parts = [part.strip() for part in reply.strip().split(separator)]
    if separator.strip() == "":
        # a whitespace separator: providers add '\r' or blank lines around line breaks; drop those
        parts = [part for part in parts if part]
    if len(parts) != count or any(not part for part in parts):
        return None
    return parts

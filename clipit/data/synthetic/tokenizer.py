"""A WordPiece vocabulary that covers every word of the synthetic captions, templates and class names.

A randomly initialised text tower needs a tokenizer whose ids mean something for this data: each caption
word is one token (no [UNK]), and single letters (plain and `##` continuation) follow so that any other
lowercase word still splits into pieces instead of [UNK].
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from clipit import atomic
from clipit.data.synthetic.paraphrase import all_words

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_PIECES = string.ascii_lowercase + string.digits + "àèéìòù"
_PUNCTUATION = "'.,;:!?-\"()"


def vocabulary(extra_words: Iterable[str] = ()) -> list[str]:
    """Tokens in id order: specials, the synthetic words (sorted), letters, `##` letters, punctuation."""
    words = sorted(all_words() | {w.lower() for w in extra_words})
    tokens = [*SPECIAL_TOKENS, *words]
    for piece in [*_PIECES, *(f"##{c}" for c in _PIECES), *_PUNCTUATION]:
        if piece not in tokens:
            tokens.append(piece)
    return tokens


def write_tokenizer(folder: Path, extra_words: Iterable[str] = ()):
    """Save a lowercase, accent-keeping BertTokenizer to `folder` (tokenizer.json, tokenizer_config.json, vocab.txt)."""
    # imported here: transformers takes seconds to import, and drawing worker processes never need it
    from transformers import BertTokenizer

    tokens = vocabulary(extra_words)
    # transformers 5 ignores `vocab_file=`: pass the vocabulary itself.
    # Accents kept: lowercasing would otherwise also strip them and read "c'è" (there is) as "c'e" (and).
    tokenizer = BertTokenizer(
        vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True, strip_accents=False
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    # transformers 5 writes only tokenizer.json; vocab.txt is what other BERT tooling reads.
    atomic.write_text(folder / "vocab.txt", "".join(f"{t}\n" for t in tokens))
    return tokenizer

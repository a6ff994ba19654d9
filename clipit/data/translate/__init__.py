"""Machine translation of manifest captions: `run(cfg)` is what `clipit translate` calls.

Modules: `runner` (rows in, rows out), `dispatch` (packs, threads, fallback, commits), `providers`
(deep-translator backends with timeouts and error classes), `marian` (local MarianMT), `packing`,
`retry` (rate limit, backoff), `cache` (SQLite), `review` (`--sample` sheets and scores), `redact`
(secrets out of every error a provider raises).
"""

from clipit.data.translate.runner import TranslateSummary, report, run

__all__ = ["TranslateSummary", "report", "run"]

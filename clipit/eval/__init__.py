"""Zero-shot classification and retrieval: metrics, benchmark files, reports (docs/eval.md)."""

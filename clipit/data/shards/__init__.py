"""build-shards: merge source folders into train/val Parquet training shards (see docs/data.md)."""

from clipit.data.shards.build import run
from clipit.data.shards.report import summary_lines, summary_table

__all__ = ["run", "summary_lines", "summary_table"]

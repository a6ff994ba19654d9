"""`[embed]`: embeddings of image folders and text files, and search over them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from clipit.config.base import Section


class EmbedConfig(Section):
    model: str | None = Field(None, description="Model (clipit run, HF folder or hub id).")
    batch_size: int = Field(64, ge=1, description="Items per forward pass.")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Compute dtype.")
    compilation_cache: bool = Field(
        True,
        description="Keep compiled code under the user cache folder (clipit/jax) so later runs start faster.",
    )
    images: Path | None = Field(None, description="Folder of images to embed (searched recursively).")
    text: Path | None = Field(None, description="Text file to embed instead, one text per line.")
    out: Path | None = Field(None, description="Write a resumable folder of embedding shards here.")
    paths_out: Path | None = Field(None, description="List the embedded images' paths here, one per row.")
    shard_size: int = Field(100_000, ge=1, description="Rows per img_emb shard with --out.")
    ann_threshold: int = Field(
        50_000,
        ge=0,
        description="With --out, build an ANN index (usearch HNSW) from this many vectors; fewer: exact search.",
    )
    distributor: Literal["local", "ray"] = Field(
        "local", description="With --out: 'local' embeds here; 'ray' embeds each shard as a Ray task."
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster address ('auto', 'HOST:6379', 'ray://HOST:10001'); unset: a Ray started for the run.",
    )
    ray_workers: int = Field(
        2, ge=1, description="With distributor 'ray': Ray actors, each loading the model once."
    )
    index: Path | None = Field(None, description="Embedded folder that `clipit search` ranks.")
    k: int = Field(10, ge=1, description="Results shown by `clipit search`.")

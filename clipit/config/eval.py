"""`[eval]`: zero-shot classification and retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from clipit.config.base import Section


class ZeroShotSettings(Section):
    dataset: Literal["imagenet-it", "synthetic"] = Field("imagenet-it", description="Benchmark.")
    data: Path | None = Field(None, description="Images: one folder per class (ImageNet val layout).")
    classnames: Path | None = Field(
        None, description="Class names (CLIP_benchmark JSON or CLIP-Italian TSV); default: download."
    )
    templates: Path | None = Field(None, description="Prompt templates; default: download.")
    labels: Path | None = Field(
        None,
        description="Labels file ('file<TAB>label' lines) for a flat image folder instead of class folders.",
    )


class RetrievalSettings(Section):
    dataset: Literal["mscoco-it", "synthetic"] = Field("mscoco-it", description="Benchmark.")
    images: Path | None = Field(None, description="Images folder.")
    annotations: Path | None = Field(None, description="COCO-format caption JSON.")


class EvalConfig(Section):
    model: list[str] = Field(default_factory=list, description="Models to evaluate (run, folder or hub id).")
    batch_size: int = Field(64, ge=1, description="Images or texts per forward pass.")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Compute dtype.")
    compilation_cache: bool = Field(
        True,
        description="Keep compiled code under the user cache folder (clipit/jax) so later runs start faster.",
    )
    output: Path | None = Field(None, description="Metrics JSON written here.")
    plot: Path | None = Field(None, description="Bar-chart PNG (default with several models: beside output).")
    classnames_url: str = Field(
        "https://raw.githubusercontent.com/LAION-AI/CLIP_benchmark/48de38c1689fa6d8b4dd53e3370c669c3bb18117/"
        "clip_benchmark/datasets/",
        description="Where default class names and templates are downloaded from (checked by sha256).",
    )
    cache_dir: Path = Field(
        Path("~/.cache/clipit"), description="Downloaded class names and templates are cached here."
    )
    zero_shot: ZeroShotSettings = Field(default_factory=ZeroShotSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)

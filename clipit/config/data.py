"""`[data]`: where raw sources come from, how they are downloaded, sharded and loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from clipit.config.base import Section


class DownloadSettings(Section):
    """img2dataset settings shared by every downloaded source."""

    processes: int = Field(2, ge=1, description="Worker processes of img2dataset.")
    threads: int = Field(16, ge=1, description="Download threads per process.")
    timeout: float = Field(10.0, gt=0, description="Seconds before one image request gives up.")
    retries: int = Field(
        2, ge=0, description="Immediate retries per image after a failed request (img2dataset)."
    )
    rate_limit_rounds: int = Field(
        2, ge=0, description="Extra rounds for URLs refused with HTTP 429/503, each after a wait."
    )
    rate_limit_wait: float = Field(
        60.0, ge=0, description="Seconds before the first rate-limit round; doubled each further round."
    )
    user_agent_token: str = Field(
        "clipit-jax/0.1 (+https://pypi.org/project/clipit-jax/; research dataset download)",
        description="Added to the User-Agent header; Wikimedia refuses generic agents.",
    )
    incremental_mode: Literal["incremental", "overwrite"] = Field(
        "incremental",
        description="'incremental' skips finished shards on a rerun (resume after a kill); 'overwrite' starts over.",
    )
    image_size: int = Field(256, ge=16, description="Shorter side of downloaded images, in pixels.")
    samples_per_shard: int = Field(10_000, ge=1, description="Images per downloaded tar shard.")
    distributor: Literal["multiprocessing", "pyspark", "ray"] = Field(
        "multiprocessing", description="img2dataset distributor; pyspark or ray for clusters."
    )
    spark_master: str | None = Field(
        None,
        description="With pyspark: the Spark master clipit starts a session on ('spark://HOST:7077', 'local[4]'); unset: img2dataset's local[processes].",
    )


class Cc3mSource(Section):
    tsv: Path | None = Field(None, description="Google's header-less caption<TAB>url file.")
    out: Path = Field(Path("sources/cc3m"), description="Output folder of the cc3m download.")
    limit: int | None = Field(None, ge=1, description="Only the first N rows (for trials).")


class WitSource(Section):
    tsv: list[Path] = Field(default_factory=list, description="WIT TSV files (gzipped or not).")
    lang: str = Field("it", description="Keep rows of this language.")
    out: Path = Field(Path("sources/wit"), description="Output folder of the wit download.")
    limit: int | None = Field(None, ge=1, description="Only the first N kept rows.")
    proper_noun_filter: bool = Field(True, description="Drop captions that are mostly proper nouns.")
    max_proper_noun_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of capitalised words above which a caption is dropped."
    )


class MscocoItSource(Section):
    annotations: list[Path] = Field(default_factory=list, description="MSCOCO-IT caption JSON files.")
    annotations_en: list[Path] = Field(
        default_factory=list, description="English COCO caption JSON files (fill caption_en)."
    )
    images: Path | None = Field(None, description="Local COCO images folder (else COCO URLs are fetched).")
    out: Path = Field(Path("sources/mscoco-it"), description="Output folder of the mscoco-it download.")


class SyntheticSource(Section):
    out: Path = Field(Path("sources/synthetic"), description="Output folder of the synthetic dataset.")
    n: int = Field(
        4000, ge=1, description="Number of training images (each with captions_per_image captions)."
    )
    seed: int = Field(0, description="Seed; the same seed gives the same dataset.")
    image_size: int = Field(64, ge=16, description="Side of the square synthetic images, in pixels.")
    captions_per_image: int = Field(
        3,
        ge=1,
        le=8,
        description="Distinct captions of each training image (paraphrases; fewer where fewer fit).",
    )
    samples_per_shard: int = Field(
        10_000, ge=1, description="Images per tar shard (as img2dataset writes them)."
    )
    zeroshot_per_class: int = Field(50, ge=1, description="Images per class of each zero-shot attribute set.")
    retrieval_images: int = Field(200, ge=1, description="Images of the retrieval set (2-3 captions each).")
    workers: int = Field(
        2, ge=0, description="Drawing processes for 10,000 images or more (0 = main process)."
    )


class ShardSettings(Section):
    sources: list[Path] = Field(default_factory=list, description="Source folders merged by build-shards.")
    out: Path = Field(Path("shards"), description="Output folder of build-shards.")
    val_fraction: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Share of images held out for validation (every caption of an image in one split).",
    )
    exclude: list[Path] = Field(
        default_factory=list,
        description="Evaluation sets whose images are removed (image folders, source folders or manifest files).",
    )
    exclude_max_distance: int = Field(
        6,
        ge=0,
        le=32,
        description="Largest pHash Hamming distance (of 64 bits) at which an image is an eval image.",
    )
    image_side: int = Field(256, ge=16, description="Shorter side of re-encoded shard images.")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality of shard images.")
    min_image_side: int = Field(32, ge=1, description="Images with a smaller side are filtered.")
    min_caption_chars: int = Field(3, ge=1, description="Shorter captions are filtered.")
    max_caption_chars: int = Field(1000, ge=1, description="Longer captions are filtered.")
    rows_per_shard: int = Field(20_000, ge=1, description="Rows per Parquet shard (a few hundred MB).")
    row_group_size: int = Field(256, ge=1, description="Rows per Parquet row group (cheap seeking).")
    max_image_pixels: int = Field(
        89_478_485, ge=1, description="Larger images are filtered as decompression bombs."
    )
    dedup_images: bool = Field(
        True,
        description="Drop an image whose bytes already came from another URL or file (other captions too).",
    )
    lang: str = Field(
        "it", description="Language of the kept captions; rows whose `lang` differs are filtered."
    )
    workers: int = Field(2, ge=0, description="Decode/resize worker processes (0 = in the main process).")
    distributor: Literal["local", "ray"] = Field(
        "local", description="'local': `workers` processes here; 'ray': one Ray task per output shard."
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster address ('auto', 'HOST:6379', 'ray://HOST:10001'); unset: a Ray started for the run.",
    )

    # Filters that together reject every row are a mistake in the config, not a run to start.
    @model_validator(mode="after")
    def _filters_agree(self) -> ShardSettings:
        if self.min_caption_chars > self.max_caption_chars:
            raise ValueError(
                f"min_caption_chars {self.min_caption_chars} > max_caption_chars {self.max_caption_chars}: "
                "every caption would be filtered"
            )
        if self.min_image_side**2 > self.max_image_pixels:
            raise ValueError(
                f"min_image_side {self.min_image_side} needs {self.min_image_side**2} pixels, more than "
                f"max_image_pixels {self.max_image_pixels}: every image would be filtered"
            )
        return self


class LoaderSettings(Section):
    workers: int = Field(0, ge=0, description="Decoding worker processes (0 = in the main process).")
    augment: bool = Field(True, description="Train transform: random resized crop and flip.")
    crop_scale_min: float = Field(0.5, gt=0, le=1, description="Smallest crop area of the random crop.")
    flip: bool = Field(True, description="Random horizontal flip (swaps sinistra/destra in captions).")
    color_jitter: float = Field(
        0.0, ge=0, le=1, description="Strength of brightness/contrast/saturation jitter."
    )
    prefetch: int = Field(2, ge=0, description="Batches prepared ahead of the trainer.")
    shuffle_window: int = Field(
        16, ge=1, description="Row groups whose rows are shuffled together (and cached per worker)."
    )


class DataConfig(Section):
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    cc3m: Cc3mSource = Field(default_factory=Cc3mSource)
    wit: WitSource = Field(default_factory=WitSource)
    mscoco_it: MscocoItSource = Field(default_factory=MscocoItSource)
    synthetic: SyntheticSource = Field(default_factory=SyntheticSource)
    shards: ShardSettings = Field(default_factory=ShardSettings)
    loader: LoaderSettings = Field(default_factory=LoaderSettings)

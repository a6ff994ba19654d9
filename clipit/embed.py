"""Embeddings of an image folder or a text file: one .npy to a stream, or a resumable folder of shards.

Stream mode (`clipit embed PATH > vecs.npy`): float32 [N, D], rows L2-normalised, in sorted
relative-path order of the readable images (or in line order of a text file). Unreadable images are
skipped, warned about and left out of the rows; `paths_out` lists the rows' paths, one per line, so the
two align (a file name holding a line break is refused before any work: it would shift the lines).
When no image can be read at all the run fails and writes nothing.

Folder mode (`--out DIR`, for collections too large for one array) is clipit.embed_index: the folder is
listed and embedded shard by shard, so memory does not grow with the collection, here or (with
`embed.distributor = "ray"`) as one Ray task per shard.

Every input and output is checked before the model is loaded, so a bad path costs no work.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from clipit import atomic, embed_index
from clipit.config.embed import EmbedConfig
from clipit.console import info
from clipit.distribute import Distributor
from clipit.embed_shard import LINE_BREAKS
from clipit.encode import MAX_FAILURES_SHOWN, Encoder
from clipit.errors import ClipitError, ConfigError, DataError
from clipit.image_files import IMAGE_EXTENSIONS, iter_images, list_images
from clipit.outputs import check_output_dir, check_output_file

EMBED_RECORD = embed_index.RECORD


def refuse_terminal(stream) -> None:
    """Binary .npy on a terminal is garbage and can upset it: refuse before any work is done."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        raise ClipitError(
            "refusing to write binary .npy data to a terminal",
            "redirect stdout to a file (clipit embed DIR > vecs.npy) or use --out DIR",
        )


def write_npy(vectors: np.ndarray, stream: BinaryIO) -> None:
    np.save(stream, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    stream.flush()


def check_has_images(root: Path) -> None:
    """What image_paths checks, reading only up to the first image."""
    if not Path(root).is_dir():
        raise DataError(f"{root} is not a folder", "pass a folder of images (searched recursively)")
    if next(iter_images(root), None) is None:
        raise DataError(f"{root} holds no image files", "supported: " + ", ".join(sorted(IMAGE_EXTENSIONS)))


def distributor(cfg: EmbedConfig) -> Distributor:
    """Where `embed --out` embeds its shards: here, or on Ray actors (cfg.ray_workers) that each load the model."""
    return Distributor(cfg.distributor, cfg.ray_workers, cfg.ray_address, "embed.distributor")


def image_paths(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder", "pass a folder of images (searched recursively)")
    paths = list_images(root)
    if not paths:
        raise DataError(f"{root} holds no image files", "supported: " + ", ".join(sorted(IMAGE_EXTENSIONS)))
    return paths


def check_line_safe_names(root: Path, paths: Sequence[Path]) -> None:
    """Refuse a listing with a line break in a relative path: one path per line would go out of step."""
    for path in paths:
        name = path.relative_to(root).as_posix()
        if any(c in LINE_BREAKS for c in name):
            raise DataError(
                f"{root}: the file name {name!r} holds a line break, which would split its line in --paths-out",
                "rename the file, or use --out DIR (its paths are stored in Parquet)",
            )


def read_text_lines(path: Path) -> list[str]:
    """One text per line; blank lines are an error (they would silently shift the rows)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist", "pass --text FILE with one text per line") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}", "convert it to UTF-8") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{path}:{number} is blank", "remove blank lines: row i of the output is line i")
    if not lines:
        raise DataError(f"{path} is empty", "put one text per line")
    return lines


def embed_images(
    encoder: Encoder, root: Path, *, batch_size: int, paths: Sequence[Path] | None = None
) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """(vectors, relative paths of the rows, [(relative path, reason)] of unreadable files) of the images
    under `root` (or of `paths`, its listing). An error when none of them can be read."""
    root = Path(root)
    paths = image_paths(root) if paths is None else list(paths)
    encoded = encoder.encode_images(paths, batch_size=batch_size)
    relative = [p.relative_to(root).as_posix() for p in paths]
    failures = [(relative[i], reason) for i, reason in encoded.failures]
    if len(encoded.kept) == 0:
        raise DataError(
            f"none of the {len(paths)} image files under {root} could be read", "see the warnings above"
        )
    return encoded.vectors, [relative[i] for i in encoded.kept], failures


def embed_texts(encoder: Encoder, text_file: Path, *, batch_size: int) -> np.ndarray:
    return encoder.encode_texts(read_text_lines(text_file), batch_size=batch_size)


def embed_to_folder(encoder: Encoder, root: Path, out: Path, *, batch_size: int, shard_size: int) -> dict:
    """Embed `root` into the folder `out` (clipit.embed_index), resuming what is still current."""
    return embed_index.write(
        encoder, root, image_paths(root), out, batch_size=batch_size, shard_size=shard_size
    )


def check_inputs(cfg: EmbedConfig, stdout) -> None:
    """Everything that can be checked without the model: flags, outputs, the terminal."""
    if (cfg.images is None) == (cfg.text is None):
        raise ConfigError(
            "give either an image folder (PATH) or --text FILE"
            if cfg.images is None
            else "give PATH or --text, not both",
            "clipit embed images/ > vecs.npy, or clipit embed --text captions.txt > vecs.npy",
        )
    if cfg.text is not None and cfg.paths_out is not None:
        raise ConfigError("--paths-out is for image folders", "drop it with --text (row i is line i)")
    if cfg.model is None:
        raise ConfigError("no model given", "pass --model M or set embed.model")
    if cfg.out is not None and cfg.paths_out is not None:
        raise ConfigError(
            "--paths-out is for stdout mode", "with --out the paths are in DIR/metadata/*.parquet"
        )
    if cfg.out is not None:
        check_output_dir(cfg.out, "--out")
        embed_index.check_folder(cfg.out)
        distributor(cfg).check()
    elif cfg.distributor != "local":
        raise ConfigError(
            f"embed.distributor = {cfg.distributor!r} is for --out DIR",
            "add --out DIR, or use --distributor local for a .npy on stdout",
        )
    else:
        refuse_terminal(stdout)
    if cfg.paths_out is not None:
        check_output_file(cfg.paths_out, "--paths-out")


def run(cfg: EmbedConfig, stdout) -> dict:
    """`clipit embed`: check the inputs and list the images, then load the model and embed."""
    from clipit.encode import open_model

    check_inputs(cfg, stdout)
    if cfg.text is not None:
        texts = read_text_lines(cfg.text)
        if cfg.out is not None:
            from clipit import text_index

            encoder = open_model(cfg.model, dtype=cfg.dtype, compilation_cache=cfg.compilation_cache)
            return text_index.write(
                encoder, cfg.text, texts, cfg.out, batch_size=cfg.batch_size, shard_size=cfg.shard_size
            )
        vectors = open_model(
            cfg.model, dtype=cfg.dtype, compilation_cache=cfg.compilation_cache
        ).encode_texts(texts, batch_size=cfg.batch_size)
        write_npy(vectors, stdout.buffer)
        return {"rows": len(vectors), "dim": int(vectors.shape[1])}
    if cfg.out is not None:  # listed shard by shard as it is embedded: never the whole collection at once
        check_has_images(Path(cfg.images))
        return embed_index.write(
            open_model(cfg.model, dtype=cfg.dtype, compilation_cache=cfg.compilation_cache),
            cfg.images,
            None,
            cfg.out,
            batch_size=cfg.batch_size,
            shard_size=cfg.shard_size,
            ann_threshold=cfg.ann_threshold,
            distributor=distributor(cfg),
            compilation_cache=cfg.compilation_cache,
        )
    paths = image_paths(cfg.images)
    if cfg.paths_out is not None:
        check_line_safe_names(Path(cfg.images), paths)
    encoder = open_model(cfg.model, dtype=cfg.dtype, compilation_cache=cfg.compilation_cache)
    vectors, rows, failures = embed_images(encoder, cfg.images, batch_size=cfg.batch_size, paths=paths)
    write_npy(vectors, stdout.buffer)
    if cfg.paths_out is not None:
        atomic.write_text(cfg.paths_out, "".join(f"{p}\n" for p in rows))
    info(f"{len(vectors)} images embedded ({vectors.shape[1]}-d), {len(failures)} unreadable")
    if len(failures) > MAX_FAILURES_SHOWN:  # encode warned about the first ones only: list them all
        for path, reason in failures:
            info(f"unreadable: {path}\t{reason}")
    return {"rows": len(vectors), "dim": int(vectors.shape[1]), "unreadable": [p for p, _ in failures]}

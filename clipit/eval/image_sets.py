"""Labelled image sets for zero-shot classification: class folders or a flat folder with a labels file.

ImageNet's validation set comes in two common layouts:
- one folder per wnid (`n01440764/ILSVRC2012_val_00000293.JPEG`): classes are the folders in sorted
  order, which is the order of every published class-name list (CLIP_benchmark's, CLIP-Italian's);
- a flat folder plus a labels file with one `file<sep>label` line per image (tab, comma or space),
  the label being a 0-based class index or, when wnids are known, a wnid. Kaggle's
  `LOC_val_solution.csv` (`ImageId,PredictionString`, the wnid first) has this form; an id without a
  file extension is matched to `<id>.JPEG`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from clipit.errors import DataError
from clipit.image_files import list_images


@dataclass(frozen=True)
class LabelledImages:
    paths: list[Path]
    labels: np.ndarray  # int64 class index per image
    n_classes: int


def class_folders(data_dir: Path, n_classes: int, wnids: list[str] | None = None) -> LabelledImages:
    """Images under one sub-folder per class. With `wnids`, folders are matched by name (a subset of
    the classes is then allowed); without, there must be exactly one folder per class name."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist", "pass --data with one folder per class")
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"{data_dir} has no class folders", "use the ImageNet val layout, or pass --labels FILE"
        )
    if wnids is not None:
        index = {wnid: i for i, wnid in enumerate(wnids)}
        unknown = [f.name for f in folders if f.name not in index]
        if unknown:
            raise DataError(
                f"{data_dir}: folder {unknown[0]!r} is not a class of the class-name file",
                "folders must be wnids",
            )
        folder_class = [index[f.name] for f in folders]
    else:
        if len(folders) != n_classes:
            raise DataError(
                f"{data_dir} has {len(folders)} class folders but the class-name list has {n_classes}",
                "classes are matched by sorted folder name; pass the matching --classnames",
            )
        folder_class = list(range(n_classes))
    paths: list[Path] = []
    labels: list[int] = []
    for folder, label in zip(folders, folder_class, strict=True):
        found = list_images(folder)
        paths += found
        labels += [label] * len(found)
    if not paths:
        raise DataError(f"{data_dir} has no images in its class folders", "check --data")
    return LabelledImages(paths, np.array(labels, dtype=np.int64), n_classes)


_SEPARATOR = re.compile(r"[\t,]| +")


def labels_file(
    labels: Path, data_dir: Path, n_classes: int, wnids: list[str] | None = None
) -> LabelledImages:
    """Images listed in a labels file, relative to `data_dir`."""
    labels, data_dir = Path(labels), Path(data_dir)
    try:
        lines = labels.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"labels file {labels} does not exist", "check --labels") from None
    wnid_index = {wnid: i for i, wnid in enumerate(wnids or [])}
    paths: list[Path] = []
    classes: list[int] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = _SEPARATOR.split(line.strip(), maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{labels}:{number}: expected 'file<TAB>label', got {line!r}", "fix the line")
        name, label_text = parts[0].strip(), parts[1].strip().split()[0] if parts[1].strip() else ""
        label = _parse_label(label_text, wnid_index, n_classes)
        if label is None:
            if number == 1:
                continue  # a header line ("ImageId,PredictionString")
            raise DataError(
                f"{labels}:{number}: label {label_text!r} is neither a class index below {n_classes} nor a known wnid",
                "labels are 0-based indices in class-name order (wnids need CLIP-Italian's TSV class names)",
            )
        relative = PurePosixPath(name.replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts:
            raise DataError(
                f"{labels}:{number}: {name!r} leaves the data folder", "use paths relative to --data"
            )
        path = data_dir / relative
        if not relative.suffix and not path.exists():
            path = path.with_name(path.name + ".JPEG")
        paths.append(path)
        classes.append(label)
    if not paths:
        raise DataError(f"labels file {labels} lists no images", "one 'file<TAB>label' line per image")
    return LabelledImages(paths, np.array(classes, dtype=np.int64), n_classes)


def _parse_label(text: str, wnid_index: dict[str, int], n_classes: int) -> int | None:
    if text.isdigit() and int(text) < n_classes:
        return int(text)
    return wnid_index.get(text)

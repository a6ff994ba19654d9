"""The synthetic zero-shot sets (written by `clipit download synthetic`, layout in docs/data.md).

`<synthetic>/zeroshot/<attribute>/<NN-class>/*.jpg` with `classnames.json` and `templates.json` in
CLIP_benchmark's JSON form (`{"synthetic": [...]}`) beside the class folders, whose sorted order is the
class order. Attributes: colour, shape and count (one attribute varies, the others are fixed in the
templates), composition ((shape, colour) pairs held out of every training caption) and relation
(where one object is with respect to another). Each becomes
one zero-shot task, reported with its chance level beside it.
"""

from __future__ import annotations

from pathlib import Path

from clipit.errors import DataError
from clipit.eval import classnames as names
from clipit.eval.image_sets import class_folders
from clipit.eval.tasks import Task

SYNTHETIC_KEY = "synthetic"
ATTRIBUTE_ORDER = ("colour", "shape", "count", "composition", "relation")  # others follow in sorted order


def attribute_folders(data: Path) -> list[Path]:
    """The attribute folders under DATA/zeroshot (or DATA itself when it is the zeroshot folder)."""
    data = Path(data)
    root = data / "zeroshot" if (data / "zeroshot").is_dir() else data
    folders = (
        [p for p in root.iterdir() if p.is_dir() and (p / "classnames.json").is_file()]
        if root.is_dir()
        else []
    )
    if not folders:
        raise DataError(
            f"{data} holds no synthetic zero-shot sets (<attribute>/classnames.json)",
            "pass the folder written by `clipit download synthetic` (or its zeroshot/ folder)",
        )
    rank = {name: i for i, name in enumerate(ATTRIBUTE_ORDER)}
    return sorted(folders, key=lambda p: (rank.get(p.name, len(rank)), p.name))


def synthetic_tasks(
    data: Path, *, classnames: Path | None = None, templates: Path | None = None
) -> list[Task]:
    """One task per attribute; `classnames`/`templates` override every attribute's own files."""
    tasks = []
    for folder in attribute_folders(data):
        class_list = names.read_classnames(classnames or folder / "classnames.json", SYNTHETIC_KEY)
        template_list = names.read_templates(templates or folder / "templates.json", SYNTHETIC_KEY)
        tasks.append(Task(folder.name, class_folders(folder, len(class_list)), class_list, template_list))
    return tasks

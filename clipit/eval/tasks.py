"""Zero-shot tasks: a labelled image set with its class names and templates (ImageNet-IT here; the
synthetic attributes in clipit.eval.synthetic). clipit.eval.zeroshot classifies them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipit.console import info
from clipit.eval import classnames as names
from clipit.eval.image_sets import LabelledImages, class_folders, labels_file

IMAGENET_KEY = "imagenet1k"  # the key of CLIP_benchmark's JSON files


@dataclass(frozen=True)
class Task:
    """One labelled image set with its class names and templates; `name` prefixes its metrics."""

    name: str
    images: LabelledImages
    classnames: list[str]
    templates: list[str]


def imagenet_task(
    data: Path,
    *,
    classnames: Path | None,
    templates: Path | None,
    labels: Path | None,
    cache_dir: Path,
    base_url: str = names.CLIP_BENCHMARK_BASE_URL,
) -> Task:
    """ImageNet-IT: class names and templates from the given files or CLIP_benchmark's (the installed
    package's copy, else downloaded once)."""
    classnames_path = classnames or names.locate_pinned(names.CLASSNAMES_FILE, cache_dir, base_url=base_url)
    class_list = names.read_classnames(classnames_path, IMAGENET_KEY)
    if templates is not None:
        template_list = names.read_templates(templates, IMAGENET_KEY)
    else:
        template_list = names.default_templates_for(classnames) or names.read_templates(
            names.locate_pinned(names.TEMPLATES_FILE, cache_dir, base_url=base_url), IMAGENET_KEY
        )
    wnids = names.read_wnids(classnames_path)
    if labels is not None:
        images = labels_file(labels, data, len(class_list), wnids)
    else:
        images = class_folders(data, len(class_list), wnids)
    info(f"{data}: {len(images.paths)} images, {len(class_list)} classes, {len(template_list)} templates")
    return Task("imagenet", images, class_list, template_list)

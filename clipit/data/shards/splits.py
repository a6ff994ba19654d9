"""Which split each row goes to: by image, never by row.

Rows are the same image when they share the SHA-256 of the image bytes or the image URL (the link is
transitive: one source's URL can tie its rows to another source's bytes). Every row of one image gets
one split:
- a split that a source fixed on purpose (`split_fixed`, e.g. an MSCOCO-IT dev file) wins; if an image
  is fixed to val anywhere it is val everywhere, so an evaluation image is never trained on;
- otherwise the hash of the image's identity (`manifest.split_for_image`): its smallest SHA-256 name,
  else its URL, else the row's key. The sources use the same hash, so a source's own split and
  build-shards' agree, and so do two sources that share an image.
The result depends only on the inputs, never on their order: a rerun puts every image where it was.

At millions of rows the identities are 64-bit ids (`clipit.data.string_ids`) in numpy arrays, and the
images are the connected components of the graph whose nodes are identities and whose edges are rows
(SHA-256 to URL). Each row's own identity's split is computed as the row is read, so only an image with
several different SHA-256s (rare: one URL served two files) needs its names again, to find the smallest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from clipit.data import manifest, string_ids

TRAIN, VAL = 0, 1  # split codes: positions in manifest.SPLITS
_FIXED = {None: 0, "train": 1, "val": 2}  # larger wins: val anywhere makes the image val


def row_identity(
    sha: str | None, url: str | None, key: str, val_fraction: float
) -> tuple[int, int, bool, bool]:
    """(id of the first identity, id of the second (the first when there is one), has a SHA-256, whether
    the first identity hashes to val)."""
    names = [manifest.image_identity(sha, None, "")] if sha else []
    if url:
        names.append(manifest.image_identity(None, url, ""))
    names = names or [key]  # nothing to share: the row is an image of its own
    first = string_ids.one(names[0])
    second = string_ids.one(names[1]) if len(names) > 1 else first
    return first, second, bool(sha), manifest.split_for_key(names[0], val_fraction) == "val"


@dataclass
class Identities:
    """Per row: its identities' ids, whether it has a SHA-256, its first identity's split, its fixed split."""

    first: np.ndarray  # uint64
    second: np.ndarray  # uint64
    has_sha: np.ndarray  # bool
    first_val: np.ndarray  # bool
    fixed: np.ndarray  # int8: 0 none, 1 train, 2 val

    @classmethod
    def empty(cls, rows: int) -> Identities:
        return cls(
            np.zeros(rows, np.uint64),
            np.zeros(rows, np.uint64),
            np.zeros(rows, bool),
            np.zeros(rows, bool),
            np.zeros(rows, np.int8),
        )

    def set(self, row: int, identity: tuple[int, int, bool, bool], split: str, fixed: bool | None) -> None:
        self.first[row], self.second[row], self.has_sha[row], self.first_val[row] = identity
        self.fixed[row] = _FIXED[split] if fixed else 0


def assign(ids: Identities, val_fraction: float, sha_names: Callable[[np.ndarray], list[str]]) -> np.ndarray:
    """Each row's split code (TRAIN / VAL). `sha_names(rows)`: the SHA-256 strings of those rows."""
    rows = ids.first.size
    if not rows:
        return np.zeros(0, np.int8)
    # nodes: the distinct identities, sorted in place (np.unique with an inverse would hold ~4 copies)
    nodes = np.concatenate([ids.first, ids.second])
    nodes.sort()
    keep = np.ones(nodes.size, bool)
    keep[1:] = nodes[1:] != nodes[:-1]
    nodes = nodes[keep]
    del keep
    a = np.searchsorted(nodes, ids.first).astype(np.int32)
    b = np.searchsorted(nodes, ids.second).astype(np.int32)
    edges = coo_matrix((np.ones(rows, bool), (a, b)), shape=(nodes.size,) * 2)
    del nodes, b
    _, node_label = connected_components(edges, directed=False)
    del edges
    label = node_label[a]  # the image of each row
    del a, node_label
    images = int(label.max()) + 1

    # the split of the image's identity, from one representative row: one with a SHA-256 if any
    # (its first identity is the SHA-256), else any row (all of them have the one URL or key)
    image_val = np.zeros(images, bool)
    image_val[label] = ids.first_val
    with_sha = np.flatnonzero(ids.has_sha)
    image_val[label[with_sha]] = ids.first_val[with_sha]  # every SHA-256 row of a one-SHA image agrees
    # an image with several SHA-256s: the smallest one names it
    image, sha = label[with_sha], ids.first[with_sha]
    order = np.lexsort((sha, image))
    image, sha = image[order], sha[order]
    new = np.ones(image.size, bool)
    new[1:] = (image[1:] != image[:-1]) | (sha[1:] != sha[:-1])
    labels, counts = np.unique(image[new], return_counts=True)
    del image, sha, order, new
    several = labels[counts > 1]
    if several.size:
        rows_of = with_sha[np.isin(label[with_sha], several)]
        smallest: dict[int, str] = {}
        for image, name in zip(label[rows_of].tolist(), sha_names(rows_of), strict=True):
            if image not in smallest or name < smallest[image]:
                smallest[image] = name
        for image, name in smallest.items():
            image_val[image] = manifest.split_for_image(val_fraction, name, None, "") == "val"

    fixed = np.zeros(images, np.int8)
    np.maximum.at(fixed, label, ids.fixed)
    split = np.where(fixed == 2, VAL, np.where(fixed == 1, TRAIN, image_val.astype(np.int8)))
    return split[label].astype(np.int8)

"""Which split each row goes to: by image, never by row.

Rows are the same image when they share the SHA-256 of the image bytes or the image URL (the link is
transitive: one source's URL can tie its rows to another source's bytes). Every row of one image gets
one split:
- a split that a source fixed on purpose (`split_fixed`, e.g. an MSCOCO-IT dev file) wins; if an image
  is fixed to val anywhere it is val everywhere, so an evaluation image is never trained on;
- otherwise the hash of the image's identity (`manifest.split_for_image`), which the sources use too,
  so a source's own split and build-shards' agree, and so do two sources that share an image.
The result depends only on the inputs, never on their order: a rerun puts every image where it was.
"""

from __future__ import annotations

from clipit.data import manifest


def assign(rows: list[dict], shas: dict[int, str], val_fraction: float) -> dict[int, str]:
    """row -> train / val; `shas` holds the SHA-256 that the plan computed for rows without one."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        root = node
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[node] != root:  # path compression keeps later finds short
            parent[node], node = root, parent[node]
        return root

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    names: list[list[str]] = []
    for i, row in enumerate(rows):
        sha = shas.get(i) or row["image_sha256"]
        ids = [manifest.image_identity(sha, None, "")] if sha else []
        if row["url"]:
            ids.append(manifest.image_identity(None, row["url"], ""))
        ids = ids or [row["key"]]  # nothing to share: the row is an image of its own
        for other in ids[1:]:
            union(ids[0], other)
        names.append(ids)

    members: dict[str, list[int]] = {}
    for i, ids in enumerate(names):
        members.setdefault(find(ids[0]), []).append(i)
    split: dict[int, str] = {}
    for group in members.values():
        chosen = _fixed(rows, group) or manifest.split_for_key(_identity(names, group), val_fraction)
        split.update(dict.fromkeys(group, chosen))
    return split


def _fixed(rows: list[dict], group: list[int]) -> str | None:
    fixed = {rows[i]["split"] for i in group if rows[i].get("split_fixed")}
    return "val" if "val" in fixed else "train" if fixed else None


def _identity(names: list[list[str]], group: list[int]) -> str:
    """The identity that names the image: its smallest SHA-256 name, else its smallest URL, else the key."""
    ids = {name for i in group for name in names[i]}
    for prefix in ("sha256:", "url:"):
        found = sorted(name for name in ids if name.startswith(prefix))
        if found:
            return found[0]
    return min(ids)

"""The plan's array forms of the split and the duplicate filters agree with the row-by-row definitions."""

from __future__ import annotations

import random

import numpy as np
import pytest

from clipit.data import manifest, string_ids
from clipit.data.shards import plan, splits


def reference_split(rows: list[dict], val_fraction: float) -> list[str]:
    """Row by row: union identities (SHA-256, URL), then a fixed split, else the smallest name's hash."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    names = []
    for row in rows:
        ids = [f"sha256:{row['sha']}"] if row["sha"] else []
        ids += [f"url:{row['url']}"] if row["url"] else []
        ids = ids or [row["key"]]
        for other in ids[1:]:
            a, b = find(ids[0]), find(other)
            parent[max(a, b)] = min(a, b)
        names.append(ids)
    groups: dict[str, list[int]] = {}
    for i, ids in enumerate(names):
        groups.setdefault(find(ids[0]), []).append(i)
    out = [""] * len(rows)
    for members in groups.values():
        fixed = {rows[i]["split"] for i in members if rows[i]["fixed"]}
        every = {n for i in members for n in names[i]}
        shas, urls = (
            sorted(n for n in every if n.startswith("sha256:")),
            sorted(n for n in every if n.startswith("url:")),
        )
        name = (shas or urls or sorted(every))[0]
        chosen = "val" if "val" in fixed else "train" if fixed else manifest.split_for_key(name, val_fraction)
        for i in members:
            out[i] = chosen
    return out


@pytest.mark.parametrize("seed", range(6))
def test_split_by_connected_identities_matches_the_row_by_row_union(seed):
    rng = random.Random(seed)
    rows = [
        {
            "key": f"k/{i}",
            "sha": rng.choice([None, *(f"{n:064x}" for n in range(25))]),
            "url": rng.choice([None, *(f"http://x/{n}" for n in range(25))]),
            "split": rng.choice(["train", "val"]),
            "fixed": rng.random() < 0.05,
        }
        for i in range(300)
    ]
    ids = splits.Identities.empty(len(rows))
    for i, row in enumerate(rows):
        ids.set(i, splits.row_identity(row["sha"], row["url"], row["key"], 0.3), row["split"], row["fixed"])
    shas = np.array([row["sha"] or "" for row in rows], dtype=object)
    got = splits.assign(ids, 0.3, lambda chosen: shas[chosen].tolist())
    assert [manifest.SPLITS[s] for s in got.tolist()] == reference_split(rows, 0.3)


@pytest.mark.parametrize(("seed", "images"), [(s, d) for s in range(4) for d in (True, False)])
def test_duplicate_filters_match_the_sequential_definition(seed, images):
    rng = random.Random(seed)
    count = 400
    sha = [rng.randrange(30) for _ in range(count)]
    origin = [rng.randrange(3) for _ in range(count)]
    caption = [rng.randrange(4) for _ in range(count)]
    expected, first_origin, pairs = [], {}, set()
    for s, o, c in zip(sha, origin, caption, strict=True):  # as build-shards defines them, in input order
        if (s, c) in pairs:
            expected.append(plan.DUPLICATE_PAIR)
        elif images and first_origin.get(s, o) != o:
            expected.append(plan.DUPLICATE_IMAGE)
        else:
            pairs.add((s, c))
            first_origin.setdefault(s, o)
            expected.append(None)
    code = np.zeros(count + 5, np.int16)  # a few rows that are not candidates
    rows = np.arange(5, count + 5)
    as_ids = string_ids.of
    plan._drop_duplicates(
        code, rows, as_ids([f"s{s}" for s in sha]), as_ids([f"o{o}" for o in origin]),
        as_ids([f"s{s}\n{c}" for s, c in zip(sha, caption, strict=True)]), images,
    )  # fmt: skip
    got = [plan.reason_of(c) if c else None for c in code[5:].tolist()]
    assert got == expected and not code[:5].any()

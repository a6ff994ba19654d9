"""The grain loader: batch contents, order, determinism, exact resume, process sharding, bad images."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import simplejpeg

from clipit.config.data import LoaderSettings
from clipit.data import decode, preprocess
from clipit.data.loader import make_loader
from clipit.data.text import caption_ids, tokenize
from clipit.errors import DataError
from tests.support import loader_data as loader_support

SIZE, MAX_LEN = 16, 10


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return loader_support.tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """55 rows in two files (30 + 25) of 8-row row groups: partial groups, an odd total."""
    folder = tmp_path_factory.mktemp("shards")
    keys = loader_support.write_shards(folder, [30, 25])
    return folder, keys


def loader(folder, tokenizer, *, batch=8, seed=1, train=True, workers=0, **kwargs):
    settings = LoaderSettings(workers=workers, shuffle_window=kwargs.pop("shuffle_window", 2), prefetch=1)
    return make_loader(
        folder, "train", global_batch_size=batch, tokenizer=tokenizer, max_text_length=MAX_LEN,
        image_size=SIZE, settings=settings, seed=seed, train=train, with_keys=True, **kwargs,
    )  # fmt: skip


def take(it, n):
    return [next(it) for _ in range(n)]


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            assert np.array_equal(a[name], b[name]), name


def number(key: str) -> int:
    return int(key[1:])


def test_eval_pass_is_ordered_complete_padded_and_exact(shards, tokenizer):
    folder, keys = shards
    it = loader(folder, tokenizer, train=False)
    batches = list(it)
    assert len(batches) == len(it) == 7  # ceil(55 / 8)
    assert list(it) == []  # one pass ...
    it.rewind()
    assert_same_batches(list(it), batches)  # ... and the same pass again after rewind()
    valid_keys = [k for b in batches for k, v in zip(b["key"], b["valid"], strict=True) if v]
    assert valid_keys == keys  # shard order, each row once
    assert batches[-1]["valid"].tolist() == [True] * 7 + [False]
    for batch in batches:
        assert batch["pixel_values"].shape == (8, SIZE, SIZE, 3) and batch["pixel_values"].dtype == np.uint8
        assert batch["input_ids"].shape == batch["attention_mask"].shape == (8, MAX_LEN)
        assert batch["input_ids"].dtype == batch["attention_mask"].dtype == np.int32
        assert batch["caption_id"].dtype == np.int64 and batch["valid"].dtype == bool
    # Contents: exactly the eval transform's pixels (uint8, before normalising) of the stored JPEG,
    # and the tokens of the stored caption.
    batch = batches[2]
    for i, key in enumerate(batch["key"]):
        n = number(key)
        jpeg = simplejpeg.encode_jpeg(loader_support.image_for(n), quality=95)
        expected = preprocess.eval_resize_crop(decode.decode_image(jpeg), SIZE)
        assert np.array_equal(batch["pixel_values"][i], expected)
        ids, mask = tokenize(tokenizer, [loader_support.caption_for(n)], MAX_LEN)
        assert np.array_equal(batch["input_ids"][i], ids[0]) and np.array_equal(
            batch["attention_mask"][i], mask[0]
        )
        assert batch["caption_id"][i] == caption_ids(ids, mask)[0]


def test_train_batches_are_the_per_sample_train_transform_with_flipped_captions(shards, tokenizer):
    folder, _ = shards
    it = loader(folder, tokenizer, seed=5)
    swapped = 0
    for step in range(8):  # crosses into epoch 1 (6 steps per epoch)
        batch = next(it)
        epoch = step // 6
        for i, key in enumerate(batch["key"]):
            n = number(key)
            jpeg = simplejpeg.encode_jpeg(loader_support.image_for(n), quality=95)
            augment = preprocess.TrainAugment(size=SIZE)
            pixels, flipped = preprocess.train_transform(
                decode.decode_image(jpeg), augment, preprocess.sample_rng(5, epoch, key)
            )
            assert np.array_equal(batch["pixel_values"][i], pixels)
            caption = loader_support.caption_for(n)
            expected_caption = preprocess.swap_left_right(caption) if flipped else caption
            swapped += expected_caption != caption
            ids, _ = tokenize(tokenizer, [expected_caption], MAX_LEN)
            assert np.array_equal(batch["input_ids"][i], ids[0])
    assert swapped > 0  # some flipped sample did have sinistra/destra swapped


@pytest.mark.parametrize("train", [True, False])
def test_batches_normalised_on_device_equal_the_float32_pipeline(shards, tokenizer, train):
    """uint8 hand-over + normalize_pixels (as the jitted steps run it) = per-sample float32 normalising.

    The reference is what the loader yielded before pixels stayed uint8: each sample's transform,
    normalised on the host by preprocess.normalize (eval: preprocess.eval_transform itself).
    """
    import jax

    from clipit.models.pixels import normalize_pixels

    folder, _ = shards
    it = loader(folder, tokenizer, seed=7, train=train)
    on_device = jax.jit(normalize_pixels)
    for batch in take(it, 2):
        got = np.asarray(on_device(batch["pixel_values"]))
        assert got.dtype == np.float32
        for i, key in enumerate(batch["key"]):
            jpeg = simplejpeg.encode_jpeg(loader_support.image_for(number(key)), quality=95)
            image = decode.decode_image(jpeg)
            if train:
                pixels, _ = preprocess.train_transform(
                    image, preprocess.TrainAugment(size=SIZE), preprocess.sample_rng(7, 0, key)
                )
                expected = preprocess.normalize(pixels)
            else:
                expected = preprocess.eval_transform(image, SIZE)
            np.testing.assert_allclose(got[i], expected, atol=1e-6, rtol=0)


def test_augment_off_trains_on_the_eval_transform_and_keys_are_optional(shards, tokenizer):
    folder, _ = shards
    settings = LoaderSettings(augment=False, shuffle_window=2)
    common = dict(
        global_batch_size=8, tokenizer=tokenizer, max_text_length=MAX_LEN, image_size=SIZE, settings=settings
    )
    batch = next(make_loader(folder, "train", **common, with_keys=True))
    for i, key in enumerate(batch["key"]):
        jpeg = simplejpeg.encode_jpeg(loader_support.image_for(number(key)), quality=95)
        expected = preprocess.eval_resize_crop(decode.decode_image(jpeg), SIZE)
        assert np.array_equal(batch["pixel_values"][i], expected)
    assert "key" not in next(make_loader(folder, "train", **common))


def test_epochs_visit_distinct_rows_with_a_fresh_shuffle(shards, tokenizer):
    folder, keys = shards
    it = loader(folder, tokenizer)
    assert it.steps_per_epoch == 6  # 55 // 8: the remainder (7 rows) is dropped each epoch
    epochs = [[k for b in take(it, 6) for k in b["key"]] for _ in range(3)]
    for seen in epochs:
        assert len(seen) == len(set(seen)) == 48 and set(seen) <= set(keys)
    assert epochs[0] != epochs[1] != epochs[2]
    assert it.epoch == 3 and it.wait_seconds > 0


def test_same_seed_same_batches_other_seed_other_batches(shards, tokenizer):
    folder, _ = shards
    assert_same_batches(
        take(loader(folder, tokenizer, seed=3), 4), take(loader(folder, tokenizer, seed=3), 4)
    )
    first = [list(b["key"]) for b in take(loader(folder, tokenizer, seed=3), 4)]
    other = [list(b["key"]) for b in take(loader(folder, tokenizer, seed=4), 4)]
    assert first != other


@pytest.mark.parametrize("stop_after", [3, 6, 10])  # mid-epoch, at an epoch boundary, in epoch 1
def test_restored_loader_yields_the_next_batch_of_an_uninterrupted_one(shards, tokenizer, stop_after):
    folder, _ = shards
    uninterrupted = take(loader(folder, tokenizer), stop_after + 3)
    first = loader(folder, tokenizer)
    take(first, stop_after)
    state = json.loads(json.dumps(first.get_state()))  # what a checkpoint stores
    first.close()
    resumed = loader(folder, tokenizer)
    resumed.set_state(state)
    assert_same_batches(take(resumed, 3), uninterrupted[stop_after:])


def test_state_of_another_setup_is_refused(shards, tokenizer):
    folder, _ = shards
    state = loader(folder, tokenizer, batch=8).get_state()
    with pytest.raises(DataError, match="batch_size"):
        loader(folder, tokenizer, batch=4).set_state(state)
    with pytest.raises(DataError, match="seed"):
        loader(folder, tokenizer, seed=9).set_state(state)


@pytest.mark.parametrize("count", [2, 3])
def test_process_shards_are_disjoint_and_cover_every_sample_once(shards, tokenizer, count):
    folder, keys = shards
    global_batch = 6 if count == 3 else 8
    per_epoch = []
    for process in range(count):
        it = loader(folder, tokenizer, batch=global_batch, process_index=process, process_count=count)
        assert it.batch_size == global_batch // count
        steps = it.steps_per_epoch
        per_epoch.append([[k for b in take(it, steps) for k in b["key"]] for _ in range(2)])
    for epoch in range(2):
        seen = [k for process in per_epoch for k in process[epoch]]
        assert len(seen) == len(set(seen))  # disjoint
        assert len(seen) == steps * global_batch
        assert len(keys) - len(seen) < count * (global_batch // count) + count  # only the remainder dropped
    # Eval: the processes' valid rows together are every row exactly once.
    seen = []
    for process in range(count):
        batches = list(
            loader(
                folder, tokenizer, batch=global_batch, train=False, process_index=process, process_count=count
            )
        )
        assert len(batches) == math.ceil(math.ceil(55 / count) / (global_batch // count))  # same everywhere
        seen += [k for b in batches for k, v in zip(b["key"], b["valid"], strict=True) if v]
    assert sorted(seen) == keys


def test_divisible_data_is_covered_completely_by_two_processes(tmp_path, tokenizer):
    keys = loader_support.write_shards(tmp_path, [20, 12], row_group_size=5)
    seen = []
    for process in range(2):
        it = loader(tmp_path, tokenizer, batch=8, process_index=process, process_count=2)
        seen += [k for b in take(it, it.steps_per_epoch) for k in b["key"]]
    assert sorted(seen) == keys


@pytest.mark.parametrize("count", [1, 2])
def test_each_process_reads_each_of_its_row_groups_once_per_epoch(shards, tokenizer, count):
    folder, _ = shards  # 8 row groups: 4 per file
    for process in range(count):
        it = make_loader(
            folder, "train", global_batch_size=4 * count, tokenizer=tokenizer, max_text_length=MAX_LEN,
            image_size=SIZE, settings=LoaderSettings(shuffle_window=2, prefetch=0), seed=1,
            process_index=process, process_count=count,
        )  # fmt: skip
        take(it, it.steps_per_epoch)
        # Its share of the 8 groups, plus one it shares with its neighbour at the boundary.
        assert it.maker.reader.reads <= 8 // count + (count > 1)


def test_bad_process_or_batch_settings_are_refused(shards, tokenizer):
    folder, _ = shards
    with pytest.raises(DataError, match="divisible"):
        loader(folder, tokenizer, batch=9, process_count=2)
    with pytest.raises(DataError, match="cannot fill one global batch"):
        loader(folder, tokenizer, batch=64)
    with pytest.raises(DataError, match="no val shards"):
        make_loader(folder, "val", global_batch_size=8, tokenizer=tokenizer, max_text_length=8,
                    image_size=8, settings=LoaderSettings())  # fmt: skip


BAD_IMAGES = {
    3: simplejpeg.encode_jpeg(np.full((40, 48, 3), 80, np.uint8))[:200],  # truncated
    9: b"this is not a jpeg",
    17: b"",
}


@pytest.fixture(scope="module")
def corrupt_shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrupt")
    return folder, loader_support.write_shards(folder, [24], corrupt=BAD_IMAGES)


def test_corrupt_images_are_replaced_counted_and_named(corrupt_shards, tokenizer, capsys):
    folder, keys = corrupt_shards
    bad_keys = {keys[n] for n in BAD_IMAGES}
    batches = list(loader(folder, tokenizer, train=False))
    invalid = {k for b in batches for k, v in zip(b["key"], b["valid"], strict=True) if not v}
    assert invalid == bad_keys
    capsys.readouterr()
    it = loader(folder, tokenizer)
    for batch in take(it, it.steps_per_epoch * 2):
        for i in np.flatnonzero(~batch["valid"]):
            # The slot holds a copy of another sample of the batch: same pixels, same caption id.
            twin = [j for j in np.flatnonzero(batch["valid"]) if batch["key"][j] == batch["key"][i]]
            assert twin and np.array_equal(batch["pixel_values"][i], batch["pixel_values"][twin[0]])
            assert batch["caption_id"][i] == batch["caption_id"][twin[0]]
    assert it.corrupt == 2 * len(BAD_IMAGES)  # every epoch meets each bad row once
    err = capsys.readouterr().err
    for n in BAD_IMAGES:  # each named once, with its shard file and row, though met twice
        assert err.count(f"train-00000.parquet row {n}:") == 1


def test_worker_processes_give_the_same_batches_as_in_process(corrupt_shards, tokenizer):
    """Two worker processes, resumed mid-epoch, across an epoch boundary, with corrupt rows on the way.

    One worker pool only: each spawned worker imports grain (and so jax) and transformers.
    """
    folder, _ = corrupt_shards
    in_process = loader(folder, tokenizer, batch=4)
    expected = take(in_process, 10)  # 6 steps per epoch
    state = loader(folder, tokenizer, batch=4).get_state() | {"step": 3}
    with loader(folder, tokenizer, batch=4, workers=2) as workers:
        workers.set_state(state)
        got = take(workers, 7)
        corrupt_seen = sum(int((~b["valid"]).sum()) for b in expected[3:])
        assert workers.corrupt == corrupt_seen > 0
    assert_same_batches(got, expected[3:])


def test_a_training_batch_without_any_readable_image_is_a_data_error(tmp_path, tokenizer):
    loader_support.write_shards(tmp_path, [8], corrupt={n: b"broken" for n in range(8)})
    with pytest.raises(DataError, match="every image of a training batch failed"):
        next(loader(tmp_path, tokenizer))

"""Every command's flags are `--set` items: a flag and the equivalent `--set` give the same resolved config.

Each command runs for real with CLIPIT_DEBUG=1, which prints the resolved config on stderr before any
work; the inputs named do not exist, so every command stops right after that (download synthetic draws
a few images). The flag run, the `--set` run and `clipit config show --set ...` must print the same TOML,
and it must differ from the defaults (the flags took effect).
"""

from __future__ import annotations

import tomllib

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.cli.options import RESOLVED_BEGIN, RESOLVED_END

runner = CliRunner(env={"CLIPIT_DEBUG": "1"})

# command words, [(flag args, the --set item that means the same)], any other args both runs take
CASES = {
    "download synthetic": (
        [(["--out", "syn"], "data.synthetic.out=syn"), (["--n", "3"], "data.synthetic.n=3")]
        + [(["--seed", "7"], "data.synthetic.seed=7")],
        [],
    ),
    "download cc3m": (
        [(["--tsv", "no.tsv"], "data.cc3m.tsv=no.tsv"), (["--out", "c"], "data.cc3m.out=c")]
        + [(["--limit", "5"], "data.cc3m.limit=5")]
        + [(["--distributor", "pyspark"], "data.download.distributor=pyspark")],
        [],
    ),
    "download wit": (
        [
            (["--tsv", "a.tsv", "b.tsv"], 'data.wit.tsv=["a.tsv", "b.tsv"]'),
            (["--lang", "de"], "data.wit.lang=de"),
        ]
        + [(["--out", "w"], "data.wit.out=w"), (["--limit", "4"], "data.wit.limit=4")],
        [],
    ),
    "download mscoco-it": (
        [(["--annotations", "a.json"], 'data.mscoco_it.annotations=["a.json"]')]
        + [(["--annotations-en", "e.json"], 'data.mscoco_it.annotations_en=["e.json"]')]
        + [(["--images", "coco"], "data.mscoco_it.images=coco"), (["--out", "m"], "data.mscoco_it.out=m")],
        [],
    ),
    "build-shards": (
        [(["no-source"], 'data.shards.sources=["no-source"]'), (["--out", "s"], "data.shards.out=s")]
        + [(["--val-fraction", "0.25"], "data.shards.val_fraction=0.25")]
        + [(["--exclude", "ev"], 'data.shards.exclude=["ev"]')],
        [],
    ),
    "translate": (
        [(["--input", "no.parquet"], "translate.input=no.parquet"), (["--to", "de"], "translate.to=de")]
        + [(["--backend", "libre"], "translate.backend=libre")]
        + [(["--endpoint", "http://127.0.0.1:9/"], 'translate.endpoint="http://127.0.0.1:9/"')]
        + [
            (["--output", "o.parquet"], "translate.output=o.parquet"),
            (["--sample", "3"], "translate.sample=3"),
        ],
        [],
    ),
    "train": (
        [(["--data", "no-shards"], "train.data=no-shards"), (["--out", "run"], "train.out=run")],
        ["--config", "tiny"],
    ),
    "eval zero-shot": (
        [(["--dataset", "synthetic"], "eval.zero_shot.dataset=synthetic")]
        + [(["--model", "no-model"], 'eval.model=["no-model"]'), (["--data", "d"], "eval.zero_shot.data=d")]
        + [(["--classnames", "c.json"], "eval.zero_shot.classnames=c.json")]
        + [(["--templates", "t.json"], "eval.zero_shot.templates=t.json")]
        + [
            (["--labels", "l.tsv"], "eval.zero_shot.labels=l.tsv"),
            (["--output", "o.json"], "eval.output=o.json"),
        ]
        + [(["--plot", "p.png"], "eval.plot=p.png"), (["--batch-size", "3"], "eval.batch_size=3")]
        + [(["--dtype", "bfloat16"], "eval.dtype=bfloat16")],
        [],
    ),
    "eval retrieval": (
        [(["--dataset", "synthetic"], "eval.retrieval.dataset=synthetic")]
        + [
            (["--model", "no-model"], 'eval.model=["no-model"]'),
            (["--images", "i"], "eval.retrieval.images=i"),
        ]
        + [(["--annotations", "a.json"], "eval.retrieval.annotations=a.json")]
        + [(["--batch-size", "5"], "eval.batch_size=5"), (["--dtype", "bfloat16"], "eval.dtype=bfloat16")],
        [],
    ),
    "embed": (
        [(["no-images"], "embed.images=no-images"), (["--model", "no-model"], "embed.model=no-model")]
        + [(["--out", "idx"], "embed.out=idx"), (["--paths-out", "p.txt"], "embed.paths_out=p.txt")]
        + [(["--batch-size", "3"], "embed.batch_size=3"), (["--shard-size", "9"], "embed.shard_size=9")]
        + [
            (["--dtype", "bfloat16"], "embed.dtype=bfloat16"),
            (["--ann-threshold", "0"], "embed.ann_threshold=0"),
        ],
        [],
    ),
    "search": (
        [(["--index", "no-index"], "embed.index=no-index"), (["--model", "no-model"], "embed.model=no-model")]
        + [(["-k", "3"], "embed.k=3"), (["--dtype", "bfloat16"], "embed.dtype=bfloat16")],
        ["un gatto"],
    ),
    "serve": (
        [(["--index", "no-index"], "embed.index=no-index"), (["--model", "no-model"], "embed.model=no-model")]
        + [(["--dtype", "bfloat16"], "embed.dtype=bfloat16")],
        [],
    ),
}


def resolved(args: list[str]) -> dict:
    """The config a command printed under CLIPIT_DEBUG=1 (it may then fail: its inputs do not exist)."""
    result = runner.invoke(app, args)
    text = result.stderr
    assert RESOLVED_BEGIN in text, f"clipit {' '.join(args)} printed no resolved config:\n{result.output}"
    block = text.split(RESOLVED_BEGIN + "\n", 1)[1].split(RESOLVED_END, 1)[0]
    return tomllib.loads(block)


@pytest.mark.parametrize("command", sorted(CASES))
def test_a_flag_and_its_set_item_resolve_to_the_same_config(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative outputs land here; no clipit.toml
    words = command.split()
    pairs, extra = CASES[command]
    flag_args = [arg for flag, _ in pairs for arg in flag]
    set_args = [arg for _, item in pairs for arg in ("--set", item)]
    with_flags = resolved([*words, *extra, *flag_args])
    with_set = resolved([*words, *extra, *set_args])
    assert with_flags == with_set
    config_args = ["--config", "tiny"] if "tiny" in extra else []
    shown = runner.invoke(app, ["config", "show", *config_args, *set_args])
    assert shown.exit_code == 0, shown.output
    assert with_flags == tomllib.loads(shown.stdout)
    defaults = tomllib.loads(runner.invoke(app, ["config", "show", *config_args]).stdout)
    assert with_flags != defaults


def test_a_flag_overrides_set_and_the_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clipit.toml").write_text('[embed]\nindex = "from-file"\nk = 4\n')
    config = resolved(["search", "q", "--set", "embed.index=from-set", "--index", "from-flag", "-k", "2"])
    assert (config["embed"]["index"], config["embed"]["k"]) == ("from-flag", 2)
    by_set = resolved(["--set", "embed.k=3", "search", "q", "--set", "embed.index=from-set"])
    assert (by_set["embed"]["index"], by_set["embed"]["k"]) == ("from-set", 3)

"""Run folders: what `clipit train --out RUN_DIR` writes and everything that reads it back.

`layout` spells the folder (checkpoints/, export/, config.resolved.toml, metrics.jsonl, tensorboard/,
curves.png) and says whether a folder is a run; `checkpoints` is the orbax checkpoint manager;
`params` the flat parameter dict a checkpoint stores; `model` loads the latest, best or step-N model;
`export` writes a run as an HF VisionTextDualEncoder folder with the model card of `model_card`;
`metrics` reads metrics.jsonl. The trainer writes runs through these modules; eval, embed, search and
serve read them without importing the trainer.
"""

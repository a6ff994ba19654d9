"""Tiny random MarianMT checkpoints (transformers' PyTorch class + save_pretrained) for the marian backend.

Two tokenizers: `make_tiny_marian` writes a fast word-level one (`tokenizer.json`, no sentencepiece);
`make_tiny_marian_spm` writes what the published Helsinki-NLP/opus-mt-* folders carry: source and target
sentencepiece models trained here on a few sentences, `vocab.json` and a `MarianTokenizer` config, which
`AutoTokenizer` loads as the (sentencepiece) `MarianTokenizer`. The model files are the real MarianMT
format. The end-of-sentence logit is pushed down so that the random model always writes `max_length`
tokens (never an empty translation).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import GenerationConfig, MarianConfig, MarianMTModel, PreTrainedTokenizerFast

SPECIALS = ["<pad>", "</s>", "<unk>"]
WORDS = "a the dog cat red blue green small big house car on in park with and man woman tree street".split()
MAX_LENGTH = 8
ENGLISH_CORPUS = [
    "a red dog in the park",
    "the cat on the big house",
    "a blue car in the street",
    "a man and a woman with a dog",
    "green tree and small house",
    "the big red car on the street",
]
ITALIAN_CORPUS = [
    "un cane rosso nel parco",
    "il gatto sulla casa grande",
    "una macchina blu nella strada",
    "un uomo e una donna con un cane",
    "albero verde e casa piccola",
    "la grande macchina rossa sulla strada",
]


def make_tiny_marian(folder: Path, seed: int = 1) -> Path:  # seed 1: six inputs, six outputs
    vocab = {token: i for i, token in enumerate([*SPECIALS, *WORDS, *(f"it{i}" for i in range(12))])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=32
    )
    _save_model(folder, len(vocab), seed)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_marian_spm(folder: Path, seed: int = 1) -> Path:
    """The sentencepiece flavour: source.spm, target.spm, vocab.json, as opus-mt folders have them."""
    import sentencepiece
    from transformers import MarianTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    sides = {"source": ENGLISH_CORPUS, "target": ITALIAN_CORPUS}
    pieces: list[str] = []
    for side, lines in sides.items():
        prefix = folder / f"{side}_model"
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_prefix=str(prefix),
            vocab_size=60,
            hard_vocab_limit=False,
            character_coverage=1.0,
            bos_id=-1,
            eos_id=-1,
            minloglevel=2,
        )
        Path(f"{prefix}.model").rename(folder / f"{side}.spm")
        Path(f"{prefix}.vocab").unlink()
        processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / f"{side}.spm"))
        pieces += [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    vocab = {token: i for i, token in enumerate(dict.fromkeys([*SPECIALS, *pieces]))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    tokenizer = MarianTokenizer(
        source_spm=str(folder / "source.spm"),
        target_spm=str(folder / "target.spm"),
        vocab=str(folder / "vocab.json"),
        source_lang="en",
        target_lang="it",
        model_max_length=32,
    )
    _save_model(folder, len(vocab), seed)
    tokenizer.save_pretrained(folder)
    return folder


def _save_model(folder: Path, vocab_size: int, seed: int) -> None:
    config = MarianConfig(
        vocab_size=vocab_size,
        decoder_vocab_size=vocab_size,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        forced_eos_token_id=None,
        init_std=0.5,  # large random weights: the output depends on the input
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias[0, 1] = -1e4  # never stop early
        model.final_logits_bias[0, 0] = -1e4  # never write padding
    model.generation_config = GenerationConfig(
        max_length=MAX_LENGTH,
        num_beams=1,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    model.save_pretrained(folder)

"""A tiny random MarianMT checkpoint (transformers' PyTorch class + save_pretrained) for the marian backend.

sentencepiece (which MarianTokenizer needs) is not installed here, so the folder carries a fast
word-level tokenizer (`tokenizer.json`) that `AutoTokenizer` loads without it; the model files are the
real MarianMT format. The end-of-sentence logit is pushed down so that the random model always writes
`max_length` tokens (never an empty translation).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import GenerationConfig, MarianConfig, MarianMTModel, PreTrainedTokenizerFast

SPECIALS = ["<pad>", "</s>", "<unk>"]
WORDS = "a the dog cat red blue green small big house car on in park with and man woman tree street".split()
MAX_LENGTH = 8


def make_tiny_marian(folder: Path, seed: int = 1) -> Path:  # seed 1: six inputs, six outputs
    vocab = {token: i for i, token in enumerate([*SPECIALS, *WORDS, *(f"it{i}" for i in range(12))])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=32
    )
    config = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(vocab),
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
    tokenizer.save_pretrained(folder)
    return folder

"""Tiny random Hugging Face checkpoints, built with transformers' PyTorch classes and `save_pretrained`.

No network here, so tests cannot fetch real weights; these folders have the same layout and key names
as the published checkpoints (CLIPVisionModel, CLIPModel, BertModel, VisionTextDualEncoderModel), at
sizes that build in well under a second. Every function takes the folder to write and returns it.

Initialisation is seeded (same folder contents for the same seed), and every parameter gets extra seeded
noise: HF initialises LayerNorms to weight 1 / bias 0 and biases to 0, which would let a parity test pass
with swapped or missing tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    VisionTextDualEncoderConfig,
    VisionTextDualEncoderModel,
)

IMAGE_SIZE = 32  # pixels; 4x4 patches of 8
PATCH_SIZE = 8
PROJECTION_DIM = 16
MAX_POSITIONS = 128  # BERT positions: room for any max_text_length a test uses

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Words of the synthetic captions (shapes, colours, counts) and of common test sentences, so that
# tokenising Italian test text gives real ids instead of [UNK]. Lower case: the tokenizer lower-cases
# and strips accents ("è" -> "e").
ITALIAN_WORDS = """
una un uno due tre quattro cinque sei sette otto nove dieci
foto immagine disegno di del della dei delle con e su in a da il lo la i gli le che sopra sotto
sinistra destra centro accanto vicino piccolo piccola piccoli piccole grande grandi sfondo bianco
cerchio cerchi quadrato quadrati triangolo triangoli stella stelle croce croci rombo rombi cuore cuori
esagono esagoni rettangolo rettangoli ellisse ellissi pentagono pentagoni forma forme
rosso rossa rossi rosse verde verdi blu giallo gialla gialli gialle nero nera neri nere
bianca bianchi bianche arancione arancioni viola rosa grigio grigia grigi grigie azzurro azzurra
azzurri azzurre marrone marroni
gatto gatti cane cani uomo donna bambino bambina persone casa strada mare cielo albero alberi auto
mangia corre gioca sta sono seduto seduta tavolo cibo pizza montagna spiaggia fiume
""".split()

LETTERS = list("abcdefghijklmnopqrstuvwxyz0123456789")
PUNCTUATION = list(".,;:!?'\"-()")


def italian_vocab() -> list[str]:
    """The default tiny vocabulary: specials, punctuation, letters (so no word is [UNK]), words."""
    pieces = SPECIAL_TOKENS + PUNCTUATION + LETTERS + [f"##{c}" for c in LETTERS] + ITALIAN_WORDS
    return list(dict.fromkeys(pieces))  # keep order, drop repeats


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Add seeded noise to every parameter so no tensor keeps a trivial value (1s, 0s)."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)


# The tiny towers' sizes, in both spellings: HF's configs below and clipit's `[model]` (`model_config`).
VISION_SIZES = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=IMAGE_SIZE,
    patch_size=PATCH_SIZE,
)
TEXT_SIZES = dict(
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=MAX_POSITIONS,
)


def tiny_clip_vision_config(**overrides) -> CLIPVisionConfig:
    return CLIPVisionConfig(**{**VISION_SIZES, "projection_dim": PROJECTION_DIM, **overrides})


def tiny_bert_config(vocab_size: int, **overrides) -> BertConfig:
    return BertConfig(**{**TEXT_SIZES, "vocab_size": vocab_size, "type_vocab_size": 2, **overrides})


def model_config(**overrides):
    """clipit's `[model]` section with the towers of `save_tiny_dual_encoder` (the defaults are BERT-base
    sized); a dict override updates that sub-section, e.g. `model_config(vision={"patch_size": 4})`."""
    from clipit.config import ModelConfig

    values = {
        "vision": dict(VISION_SIZES),
        "text": {**TEXT_SIZES, "vocab_size": len(italian_vocab())},
        "projection_dim": PROJECTION_DIM,
    }
    for key, value in overrides.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    return ModelConfig(**values)


def tiny_tokenizer(vocab: list[str] | None = None) -> BertTokenizer:
    """A BertTokenizer over `vocab` (default: `italian_vocab()`); specials are added when missing."""
    tokens = list(vocab) if vocab is not None else italian_vocab()
    tokens = [t for t in SPECIAL_TOKENS if t not in tokens] + tokens
    # `vocab=` (a dict), not `vocab_file=`: transformers 5 silently ignores `vocab_file`.
    return BertTokenizer(vocab={token: i for i, token in enumerate(tokens)}, do_lower_case=True)


def tiny_image_processor(image_size: int = IMAGE_SIZE) -> CLIPImageProcessor:
    """CLIP's preprocessing (bicubic shorter-side resize, centre crop, CLIP mean/std) at `image_size`."""
    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )


def _save_tokenizer(tokenizer: BertTokenizer, directory) -> None:
    """tokenizer.json etc. (what transformers 5 writes) plus vocab.txt, which older readers expect."""
    tokenizer.save_pretrained(directory)
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (Path(directory) / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in by_id))


def save_tiny_clip_vision(directory, *, seed: int = 0) -> Path:
    """A CLIPVisionModel folder (config.json + model.safetensors)."""
    torch.manual_seed(seed)
    model = CLIPVisionModel(tiny_clip_vision_config()).eval()
    _perturb(model, seed)
    model.save_pretrained(directory)
    return Path(directory)


def save_tiny_clip(directory, *, seed: int = 0) -> Path:
    """A full CLIPModel folder (vision + CLIP text tower + both projections)."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        vision_config=tiny_clip_vision_config().to_dict(),
        text_config=dict(
            vocab_size=99,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            projection_dim=PROJECTION_DIM,
        ),
        projection_dim=PROJECTION_DIM,
    )
    model = CLIPModel(config).eval()
    _perturb(model, seed)
    model.save_pretrained(directory)
    tiny_image_processor().save_pretrained(directory)
    return Path(directory)


def save_tiny_bert(directory, vocab: list[str] | None = None, *, seed: int = 0) -> Path:
    """A BertModel folder with its tokenizer files (tokenizer.json, vocab.txt, tokenizer_config.json)."""
    tokenizer = tiny_tokenizer(vocab)
    torch.manual_seed(seed)
    model = BertModel(tiny_bert_config(len(tokenizer.vocab))).eval()
    _perturb(model, seed)
    model.save_pretrained(directory)
    _save_tokenizer(tokenizer, directory)
    return Path(directory)


def save_tiny_dual_encoder(directory, vocab: list[str] | None = None, *, seed: int = 0) -> Path:
    """A VisionTextDualEncoderModel folder (CLIP vision + BERT) with tokenizer and image-processor files."""
    tokenizer = tiny_tokenizer(vocab)
    torch.manual_seed(seed)
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        tiny_clip_vision_config(),
        tiny_bert_config(len(tokenizer.vocab)),
        projection_dim=PROJECTION_DIM,
        logit_scale_init_value=2.6592,
    )
    model = VisionTextDualEncoderModel(config=config).eval()
    _perturb(model, seed)
    model.save_pretrained(directory)
    _save_tokenizer(tokenizer, directory)
    tiny_image_processor().save_pretrained(directory)
    return Path(directory)

"""The dual encoder: CLIP ViT image tower + BERT text tower + bias-free projections + a logit scale.

It is transformers' `VisionTextDualEncoderModel` in Flax NNX. The attribute names are a contract:
the trainer selects trainable parameters with regexes over '/'-joined paths such as
`vision_model/layers/0/fc1/kernel`, `text_model/pooler/kernel`, `visual_projection/kernel`,
`text_projection/kernel` and `logit_scale`, and hf_keys maps the same paths to HF names.

Dropout randomness: every Dropout holds a fork of the 'dropout' stream of the `nnx.Rngs` given to the
constructor (its key and counter are `nnx.RngState` variables inside the module). A pure jitted step
over `nnx.split(model, nnx.Param, ...)` therefore passes that non-parameter state in and returns the
advanced state out (`nnx.split` again after the forward pass); with `deterministic=True` it is unused.

`dtype=jnp.bfloat16` computes in bf16 while parameters stay float32; outputs of the `*_features` and
`project_*` methods are in the compute dtype and `encode_*` return float32.

Pixels: CLIP-normalised floats, or uint8 RGB as the loader and the encoder hand them over (normalised
here, on the device, by clipit.models.pixels: one place for every caller).

`kernels` (clipit.models.kernels) is fixed when the model is built and handed to every layer: build it
for the devices it will run on (`kernels_for(mesh.devices.flat)`; the default is `jax.devices()`'s).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from clipit.models.bert import Bert
from clipit.models.init import Constant, Normal
from clipit.models.kernels import check_kernels, kernels_for
from clipit.models.layers import Linear
from clipit.models.normalize import l2_normalize
from clipit.models.pixels import normalize_pixels
from clipit.models.sizes import CLIP_LOGIT_SCALE_INIT, TextSizes, VisionSizes
from clipit.models.vit import VisionTransformer


class DualEncoder(nnx.Module):
    def __init__(
        self,
        vision: VisionSizes,
        text: TextSizes,
        projection_dim: int,
        *,
        logit_scale_init: float = CLIP_LOGIT_SCALE_INIT,
        dtype=jnp.float32,
        kernels: str | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        """`kernels`: the setting of clipit.models.kernels (default: the one for `jax.devices()`)."""
        self.projection_dim = projection_dim
        self.dtype = dtype
        self.kernels = check_kernels(kernels or kernels_for())
        self.vision_model = VisionTransformer(vision, kernels=self.kernels, dtype=dtype, rngs=rngs)
        self.text_model = Bert(text, kernels=self.kernels, dtype=dtype, rngs=rngs)

        def projection(width: int) -> Linear:  # CLIP's init: std width**-0.5
            return Linear(
                width,
                projection_dim,
                kernels=self.kernels,
                kernel_init=Normal(width**-0.5),
                use_bias=False,
                dtype=dtype,
                rngs=rngs,
            )

        self.visual_projection = projection(vision.hidden_size)
        self.text_projection = projection(text.hidden_size)
        self.logit_scale_init = Constant(logit_scale_init)
        self.logit_scale = nnx.Param(self.logit_scale_init(None, ()))  # log of the scale

    @property
    def vision_sizes(self) -> VisionSizes:
        return self.vision_model.sizes

    @property
    def text_sizes(self) -> TextSizes:
        return self.text_model.sizes

    def image_features(self, pixel_values: jax.Array, *, deterministic: bool = True) -> jax.Array:
        """Pooled image features [B, Dv] (post_layernorm of CLS), before the projection; `pixel_values`
        NHWC, uint8 RGB or already CLIP-normalised floats."""
        return self.vision_model(normalize_pixels(pixel_values), deterministic=deterministic)

    def text_features(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        """BERT's pooler output [B, Dt], before the projection."""
        return self.text_model(input_ids, attention_mask, deterministic=deterministic)

    def project_image(self, pooled: jax.Array) -> jax.Array:
        """[B, Dv] -> [B, projection_dim], not normalised (HF's `get_image_features`)."""
        return self.visual_projection(pooled)

    def project_text(self, pooled: jax.Array) -> jax.Array:
        """[B, Dt] -> [B, projection_dim], not normalised (HF's `get_text_features`)."""
        return self.text_projection(pooled)

    def encode_image(self, pixel_values: jax.Array) -> jax.Array:
        """L2-normalised float32 image embeddings [B, projection_dim] (inference)."""
        return l2_normalize(self.project_image(self.image_features(pixel_values)))

    def encode_text(self, input_ids: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
        """L2-normalised float32 text embeddings [B, projection_dim] (inference)."""
        return l2_normalize(self.project_text(self.text_features(input_ids, attention_mask)))

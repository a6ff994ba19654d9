"""The pure, jitted train and eval steps of one phase.

The state is a `TrainState` (clipit.train.state). The step differentiates only the trainable
parameters, so frozen towers get no gradient computation and no optimizer state, and they run
deterministically (no dropout).
The state is donated: the update happens in place on the device.

`pixel_values` arrive as the loader hands them over, uint8 RGB; the model normalises them on the
device (DualEncoder.image_features).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from clipit.config.train import TrainConfig
from clipit.models.normalize import l2_normalize
from clipit.train import gradcache, losses, sharding
from clipit.train.mesh import batch_sharded, replicated
from clipit.train.model_state import ModelParts, Params
from clipit.train.optim import learning_rate
from clipit.train.phases import PhasePlan
from clipit.train.state import TrainState

SIGLIP_BIAS_INIT = -10.0  # SigLIP's init: with t' = log 10, most pairs start as confident negatives


def init_loss_params(train: TrainConfig) -> Params:
    return {"logit_bias": jnp.asarray(SIGLIP_BIAS_INIT, jnp.float32)} if train.loss == "siglip" else {}


def embed_batch(model, batch: dict, *, train_vision: bool, train_text: bool) -> tuple[jax.Array, jax.Array]:
    """L2-normalised embeddings; a batch holding `image_pooled`/`text_pooled` skips the towers (cache)."""
    if "image_pooled" in batch:
        image_pooled, text_pooled = batch["image_pooled"], batch["text_pooled"]
    else:
        image_pooled = model.image_features(batch["pixel_values"], deterministic=not train_vision)
        text_pooled = model.text_features(
            batch["input_ids"], batch["attention_mask"], deterministic=not train_text
        )
    return l2_normalize(model.project_image(image_pooled)), l2_normalize(model.project_text(text_pooled))


def contrastive_loss(train: TrainConfig, image, text, log_scale, loss_params, caption_id):
    scale = losses.logit_scale_value(
        log_scale, max_scale=train.max_logit_scale, fixed=train.fixed_logit_scale
    )
    ids = caption_id if train.multi_positive else None
    if train.loss == "siglip":
        loss, logits = losses.siglip(image, text, scale, loss_params["logit_bias"], ids)
    else:
        loss, logits = losses.infonce(image, text, scale, ids)
    return loss, logits, scale


def make_train_step(
    parts: ModelParts, plan: PhasePlan, train: TrainConfig, tx: optax.GradientTransformation, mesh: Mesh
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """One optimizer step; with `train.micro_batch_size` the gradient comes from GradCache (same update)."""
    gradcache.check_micro_batch_size(train, mesh)
    trainable = sorted(plan.trainable)
    key_names = {k for k, is_key in parts.rest_is_key.items() if is_key}

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        params = state.params
        frozen = {k: v for k, v in params.items() if k not in plan.trainable}

        def model_params_of(opt_params):
            # FSDP: each weight all-gathered where the model reads it, its gradient reduce-scattered back
            return sharding.gathered({**frozen, **{k: opt_params[k] for k in trainable}}, mesh)

        def encode(opt_params, rest, rows):
            model = parts.merge(model_params_of(opt_params), rest)
            embeddings = embed_batch(
                model, rows, train_vision=not plan.vision_frozen, train_text=not plan.text_frozen
            )
            return embeddings, parts.split_rest(model)

        def head(opt_params, embeddings, rows):
            loss_params = {k[len("loss/") :]: v for k, v in opt_params.items() if k.startswith("loss/")}
            log_scale = model_params_of(opt_params)["logit_scale"]
            loss, _, scale = contrastive_loss(
                train, *embeddings, log_scale, loss_params, rows.get("caption_id")
            )
            return loss, scale

        def loss_fn(opt_params):
            embeddings, rest = encode(opt_params, state.rest, batch)
            loss, scale = head(opt_params, embeddings, batch)
            return loss, (scale, rest)

        opt_params = {k: params[k] for k in trainable}
        opt_params.update({f"loss/{k}": v for k, v in state.loss_params.items()})
        if train.micro_batch_size is None or train.micro_batch_size == train.batch_size:
            (loss, (scale, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(opt_params)
        else:
            (loss, (scale, rest)), grads = gradcache.value_and_grad(
                encode, head, opt_params, state.rest, batch,
                micro_batch_size=train.micro_batch_size, mesh=mesh, key_names=key_names,
            )  # fmt: skip
        grads = sharding.constrain(grads, mesh)  # reduce-scattered to where each weight's shard lives
        updates, opt_state = tx.update(grads, state.opt, opt_params)
        lr = learning_rate(
            state.phase_step,
            peak=plan.lr,
            warmup_steps=plan.warmup_steps,
            total_steps=plan.steps,
            end=plan.end_lr,
        )
        new = optax.apply_updates(opt_params, jax.tree.map(lambda u: -lr * u, updates))
        new_state = TrainState(
            params={**params, **{k: new[k] for k in trainable}},
            rest=rest,
            opt=opt_state,
            phase_step=state.phase_step + 1,
            loss_params={k[len("loss/") :]: v for k, v in new.items() if k.startswith("loss/")},
        )
        metrics = {"loss": loss, "lr": lr, "logit_scale": scale, "grad_norm": optax.tree.norm(grads)}
        metrics = jax.lax.with_sharding_constraint(metrics, replicated(mesh))
        return sharding.constrain(new_state, mesh), metrics

    # the state keeps the layout it arrives in (clipit.train.sharding), donated and updated in place
    return jax.jit(step, donate_argnums=0)


def make_eval_step(parts: ModelParts, train: TrainConfig, mesh: Mesh) -> Callable[[TrainState, dict], dict]:
    """Loss and in-batch retrieval on one validation batch, every tower deterministic."""

    def step(params: Params, rest: Params, loss_params: Params, batch: dict) -> dict:
        model = parts.merge(sharding.gathered(params, mesh), rest)
        image, text = embed_batch(model, batch, train_vision=False, train_text=False)
        ids = batch.get("caption_id")
        loss, logits, _ = contrastive_loss(train, image, text, params["logit_scale"], loss_params, ids)
        # identical captions are one text, rows of one image one image (as in clipit eval)
        return {"loss": loss, **losses.retrieval_hits(logits, ids, image_id=batch.get("image_id"))}

    jitted = jax.jit(step, out_shardings=replicated(mesh))
    # only what the forward pass reads: the optimizer state's structure changes between phases
    return lambda state, batch: jitted(state.params, state.rest, state.loss_params, batch)


def make_tower_features(parts: ModelParts, mesh: Mesh) -> Callable[[Params, Params, dict], dict]:
    """Pooled outputs of both towers (deterministic), for the frozen-tower cache."""

    def features(params: Params, rest: Params, batch: dict) -> dict:
        model = parts.merge(sharding.gathered(params, mesh), rest)
        return {
            "image_pooled": model.image_features(batch["pixel_values"], deterministic=True),
            "text_pooled": model.text_features(
                batch["input_ids"], batch["attention_mask"], deterministic=True
            ),
        }

    return jax.jit(features, out_shardings=batch_sharded(mesh))  # rows where their inputs were

"""What a step computes from a batch: the model's inputs, and the loss and measurements of
its output (one head, or several whose losses add up), with the config's loss options.

Models whose output is smaller than their input (U-Net with ``padding="valid"``) are scored
against the centre of the label (``center_crop``). Batch keys named by
``config.input.extra_inputs`` (NYUDv2's ``hha``) reach the model with the image as one
mapping (``model_inputs``). A model returning a mapping of heads (SIFT Flow's ``{"sem":
..., "geo": ...}``) is scored head by head (``heads``): head ``h`` against
``batch["h_label"]``, the one remaining head against ``batch["label"]``; the loss is the
sum of the heads' losses (the reference sums them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import jax
import jax.numpy as jnp
from tqdm import tqdm

from fcnjax import losses, metrics
from fcnjax.data.classes import VOID
from fcnjax.models import layers
from fcnjax.run import parallel
from fcnjax.run.errors import ConfigError

if TYPE_CHECKING:
    import ml_collections

Batch = Mapping[str, jax.Array]
CLASS_WEIGHTS = ("median_frequency",)
"""Names ``config.loss.class_weights`` may hold instead of a tuple of weights."""


def center_crop(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """The centre ``size`` window of a (B, H, W, ...) array; offsets (H - h) // 2, (W - w) // 2."""
    (h, w), (height, width) = size, x.shape[1:3]
    return layers.crop(x, ((height - h) // 2, (width - w) // 2), size)


def model_inputs(batch: Batch, extra_inputs: tuple[str, ...] = ()) -> Any:
    """What the model is applied to: ``batch["image"]``, or with ``extra_inputs`` the
    mapping ``{"image": ..., key: batch[key] ...}``."""
    if not extra_inputs:
        return batch["image"]
    return {"image": batch["image"], **{key: batch[key] for key in extra_inputs}}


def heads(logits: Mapping[str, jax.Array], batch: Batch) -> tuple[str, dict[str, str]]:
    """The main head of a model's mapping of heads and the label key of every other one:
    head ``h`` is scored against ``batch["h_label"]``, the one remaining head against
    ``batch["label"]``."""
    others = {h: f"{h}_label" for h in logits if f"{h}_label" in batch}
    main = sorted(set(logits) - set(others))
    if len(main) != 1:
        raise ConfigError(f"the model's heads {sorted(logits)} need labels: one head is scored "
                          f"against 'label', each other head h against 'h_label' "
                          f"(config.input.extra_labels); the batch has {sorted(batch)}")
    return main[0], others


def main_logits(logits: jax.Array | Mapping[str, jax.Array], batch: Batch) -> jax.Array:
    """``logits`` of a one-output model, or the main head's (see ``heads``)."""
    return logits[heads(logits, batch)[0]] if isinstance(logits, Mapping) else logits


def score_batch(logits: jax.Array | Mapping[str, jax.Array], batch: Batch, *, reduction: str,
                ignore_label: int, class_weights: tuple[float, ...] = (),
                keep_prob: float = 1.0, key: jax.Array | None = None
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss of ``logits`` against the batch's labels (centre-cropped to the logits) and the
    step's measurements: loss, loss_sum, pixels, confusion (C, C).

    class_weights: per-class loss weights (empty: none); keep_prob < 1: each labelled pixel
    stays in the loss with that probability, drawn from ``key`` (the paper's loss sampling).
    A mapping of heads (see ``heads``): the loss is the sum of the heads' losses, the
    measurements the main head's plus ``h_loss_sum``, ``h_pixels``, ``h_confusion`` of
    each other head ``h``; class weights and the weight map apply to the main head only.
    """
    if isinstance(logits, Mapping):
        return score_heads(logits, batch, reduction=reduction, ignore_label=ignore_label,
                           class_weights=class_weights, keep_prob=keep_prob, key=key)
    size = logits.shape[1:3]
    labels = center_crop(batch["label"], size)
    weights = center_crop(batch["weight"], size) if "weight" in batch else None
    options = {}
    if class_weights:
        options["class_weights"] = jnp.asarray(class_weights, jnp.float32)
    if keep_prob < 1.0:
        options.update(keep_prob=keep_prob, key=key)
    loss, (total, count) = losses.segmentation_loss(
        logits, labels, reduction=reduction, ignore_label=ignore_label, weights=weights,
        **options)
    confusion = metrics.confusion_matrix(labels, jnp.argmax(logits, -1), logits.shape[-1],
                                         ignore_label)
    return loss, {"loss": loss, "loss_sum": total, "pixels": count, "confusion": confusion}


def score_heads(logits: Mapping[str, jax.Array], batch: Batch, *, reduction: str,
                ignore_label: int, class_weights: tuple[float, ...] = (),
                keep_prob: float = 1.0, key: jax.Array | None = None
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``score_batch`` of a mapping of heads: each scored against its label, losses summed."""
    main, others = heads(logits, batch)
    loss, measured = score_batch(logits[main], batch, reduction=reduction,
                                 ignore_label=ignore_label, class_weights=class_weights,
                                 keep_prob=keep_prob, key=key)
    for i, (head, label_key) in enumerate(sorted(others.items()), start=1):
        head_key = None if key is None else jax.random.fold_in(key, i)
        head_loss, head_measured = score_batch(
            logits[head], {"label": batch[label_key]}, reduction=reduction,
            ignore_label=ignore_label, keep_prob=keep_prob, key=head_key)
        loss = loss + head_loss
        measured.update({f"{head}_{k}": v for k, v in head_measured.items() if k != "loss"})
    measured["loss"] = loss
    return loss, measured


def loss_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Keyword arguments of ``train_step`` from ``config.loss`` (validated).

    class_weights: a tuple of ``num_classes`` floats (or empty), or a name of
    ``CLASS_WEIGHTS``, which ``with_class_weights`` replaces by a tuple (until then this
    checks the name and leaves the loss unweighted); keep_prob in (0, 1].
    """
    cfg, num_classes = config.loss, config.model.num_classes
    weights = cfg.class_weights
    if isinstance(weights, str):
        if weights not in CLASS_WEIGHTS:
            raise ConfigError(f"unknown config.loss.class_weights {weights!r}: give a tuple of "
                              f"weights or one of {CLASS_WEIGHTS}")
        weights = ()
    weights, keep_prob = tuple(float(w) for w in weights), float(cfg.keep_prob)
    if weights and len(weights) != num_classes:
        raise ConfigError(f"config.loss.class_weights has {len(weights)} values for "
                          f"{num_classes} classes (config.model.num_classes)")
    if not 0.0 < keep_prob <= 1.0:
        raise ConfigError(f"config.loss.keep_prob must be in (0, 1], got {keep_prob}")
    if cfg.get("ignore_label", VOID) != VOID:
        raise ConfigError(f"config.loss.ignore_label = {cfg.ignore_label}: void is always "
                          f"{VOID} (the pipeline pads with it, the builders store it); the "
                          "setting is deprecated and will be removed in the next release. "
                          "Map stored values to classes or void with "
                          "config.input.label_values")
    return {"reduction": cfg.reduction, "ignore_label": VOID,
            "class_weights": weights, "keep_prob": keep_prob}


def with_class_weights(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` itself, or, when ``config.loss.class_weights`` is "median_frequency", a copy
    holding the median-frequency weights of the training split's labels (counted once,
    printed once by process 0)."""
    if not isinstance(config.loss.class_weights, str):
        return config
    loss_options(config)  # an unknown name fails before the labels are read
    from fcnjax.data import pipeline  # grain: needed to train, not to import train_step

    weights = pipeline.median_frequency(config.input, config.model.num_classes)
    config = config.copy_and_resolve_references()
    config.unlock()
    del config.loss["class_weights"]  # the copy's field is typed str: replace it
    config.loss.class_weights = tuple(float(w) for w in weights)
    if parallel.is_main_process():
        tqdm.write("class weights (median frequency of the training labels): "
                   + ", ".join(f"{w:.4g}" for w in weights))
    return config

"""What a step computes from a batch: the model's inputs, and the loss and measurements of
its output (one head, or several whose losses add up), with the config's loss options.

Models whose output is smaller than their input (U-Net with ``padding="valid"``) are scored
against the centre of the label (``center_crop``). Batch keys named by
``config.input.extra_inputs`` (NYUDv2's ``hha``) reach the model with the image as one
mapping (``model_inputs``). A model returning a mapping of heads (SIFT Flow's ``{"sem":
..., "geo": ...}``) is scored head by head (``heads``): head ``h`` against
``batch["h_label"]``, the one remaining head against ``batch["label"]``; the loss is the
sum of the heads' losses (the reference sums them). Scoring a split: ``eval_step`` (one
batch's sums and predictions), ``make_eval_fn`` (it compiled for a mesh), ``evaluate``
(a whole split) and ``summarize`` (the paper's metrics from the sums), shared by
``train`` and ``evaluate``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from fcnjax import inference, loss_terms, metrics
from fcnjax.loss_terms import LossTerms
from fcnjax.data.classes import VOID
from fcnjax.models import layers
from fcnjax.models.norm import state_variables
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
                keep_prob: float = 1.0, key: jax.Array | None = None,
                terms: LossTerms = LossTerms()
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss of ``logits`` against the batch's labels (centre-cropped to the logits) and the
    step's measurements: loss, loss_sum, pixels, confusion (C, C).

    class_weights: per-class loss weights (empty: none); keep_prob < 1: each labelled pixel
    stays in the loss with that probability, drawn from ``key`` (the paper's loss sampling);
    terms: the loss's terms (:mod:`fcnjax.loss_terms`; default: the cross-entropy alone).
    loss_sum and pixels are the cross-entropy's, whatever the terms.
    A mapping of heads (see ``heads``): the loss is the sum of the heads' losses, the
    measurements the main head's plus ``h_loss_sum``, ``h_pixels``, ``h_confusion`` of
    each other head ``h``; class weights, focal alpha and the weight map apply to the main
    head only.
    """
    if isinstance(logits, Mapping):
        return score_heads(logits, batch, reduction=reduction, ignore_label=ignore_label,
                           class_weights=class_weights, keep_prob=keep_prob, key=key,
                           terms=terms)
    size = logits.shape[1:3]
    labels = center_crop(batch["label"], size)
    weights = center_crop(batch["weight"], size) if "weight" in batch else None
    options = {}
    if class_weights:
        options["class_weights"] = jnp.asarray(class_weights, jnp.float32)
    if keep_prob < 1.0:
        options.update(keep_prob=keep_prob, key=key)
    loss, (total, count) = loss_terms.total_loss(
        logits, labels, terms, reduction=reduction, ignore_label=ignore_label,
        weights=weights, **options)
    confusion = metrics.confusion_matrix(labels, jnp.argmax(logits, -1), logits.shape[-1],
                                         ignore_label)
    return loss, {"loss": loss, "loss_sum": total, "pixels": count, "confusion": confusion}


def score_heads(logits: Mapping[str, jax.Array], batch: Batch, *, reduction: str,
                ignore_label: int, class_weights: tuple[float, ...] = (),
                keep_prob: float = 1.0, key: jax.Array | None = None,
                terms: LossTerms = LossTerms()
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``score_batch`` of a mapping of heads: each scored against its label, losses summed."""
    main, others = heads(logits, batch)
    loss, measured = score_batch(logits[main], batch, reduction=reduction,
                                 ignore_label=ignore_label, class_weights=class_weights,
                                 keep_prob=keep_prob, key=key, terms=terms)
    for i, (head, label_key) in enumerate(sorted(others.items()), start=1):
        head_key = None if key is None else jax.random.fold_in(key, i)
        head_loss, head_measured = score_batch(
            logits[head], {"label": batch[label_key]}, reduction=reduction,
            ignore_label=ignore_label, keep_prob=keep_prob, key=head_key,
            terms=terms._replace(focal_alpha=None))
        loss = loss + head_loss
        measured.update({f"{head}_{k}": v for k, v in head_measured.items() if k != "loss"})
    measured["loss"] = loss
    return loss, measured


def loss_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Keyword arguments of ``train_step`` from ``config.loss`` (validated).

    class_weights: a tuple of ``num_classes`` floats (or empty), or a name of
    ``CLASS_WEIGHTS``, which ``with_class_weights`` replaces by a tuple (until then this
    checks the name and leaves the loss unweighted); keep_prob in (0, 1]; terms: the
    ``LossTerms`` of ``config.loss.terms`` and their options (:func:`loss_terms.from_config`).
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
    return {"reduction": cfg.reduction, "ignore_label": VOID, "class_weights": weights,
            "keep_prob": keep_prob, "terms": loss_terms.from_config(config)}


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


def eval_step(state: Any, batch: Mapping[str, jax.Array], *,
              ignore_label: int = VOID, extra_inputs: tuple[str, ...] = ()
              ) -> tuple[dict[str, jax.Array], jax.Array]:
    """Measurements of one eval batch (loss_sum, pixels, confusion; other heads' too) and
    its int32 predictions (the main head's)."""
    logits = state.apply_fn(state_variables(state), model_inputs(batch, extra_inputs),
                            train=False)
    _, measurements = score_batch(logits, batch, reduction="sum", ignore_label=ignore_label)
    del measurements["loss"]
    return measurements, jnp.argmax(main_logits(logits, batch), -1).astype(jnp.int32)


def summarize(totals: Mapping[str, np.ndarray], per_class: bool = False) -> dict[str, Any]:
    """Host summary of summed measurements: loss (mean per labelled pixel), the paper's four
    metrics and mean Dice; with ``per_class``, ``class_iu`` and ``class_dice`` lists too.
    Another head ``h``'s (``h_confusion`` ...) are the same names prefixed ``h_``."""
    pixels = float(totals["pixels"])
    summary = {"loss": float(totals["loss_sum"]) / pixels if pixels else float("nan"),
               **metrics.scores(totals["confusion"])}
    if per_class:
        by_class = metrics.class_scores(totals["confusion"])
        summary.update(class_iu=by_class["iu"], class_dice=by_class["dice"])
    for prefix in (k[:-len("confusion")] for k in totals if k.endswith("_confusion")):
        head = {k: totals[prefix + k] for k in ("loss_sum", "pixels", "confusion")}
        summary.update({prefix + k: v for k, v in summarize(head, per_class).items()})
    return summary


def evaluate(eval_fn: Any, state: Any, batches: Iterable[Mapping[str, Any]],
             num_draw: int = 0) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """Sum ``eval_fn`` over a whole split; return its summary (with per-class lists and
    the ``confusion`` matrix, rows truth, as nested lists) and the first ``num_draw``
    examples: lists of image, label and prediction, each cropped to its prediction and
    kept at its own size (a split's images may differ in size).

    ``eval_fn(state, host_batch)`` may return predictions for more rows than the batch has
    (:func:`make_eval_fn` pads it); its first rows are the batch's.
    """
    totals, drawn = None, {"image": [], "label": [], "prediction": []}
    for batch in batches:
        measured, predictions = eval_fn(state, batch)
        totals = measured if totals is None else jax.tree.map(jnp.add, totals, measured)
        take = min(num_draw - len(drawn["label"]), len(batch["label"]))
        if take > 0:
            size = predictions.shape[1:3]
            image = batch["image"][..., :3]  # colour only: not a depth channel
            drawn["image"].extend(center_crop(image, size)[:take])
            drawn["label"].extend(center_crop(batch["label"], size)[:take])
            drawn["prediction"].extend(np.asarray(predictions)[:take])
    if totals is None:
        raise ValueError("the evaluation split is empty")
    totals = jax.device_get(totals)
    summary = summarize(totals, per_class=True)
    summary["confusion"] = np.asarray(totals["confusion"]).astype(np.int64).tolist()
    return summary, {k: v for k, v in drawn.items() if v}


def make_eval_fn(config: ml_collections.ConfigDict, mesh: Any, sharding: Any) -> Any:
    """``eval_fn(state, host_batch) -> (measurements, predictions)``: ``eval_step`` compiled
    for ``mesh``. The host batch (the same whole batch on every process) is padded with void
    examples to a multiple of the devices, which add nothing to the sums; predictions come
    back replicated, padding rows last. ``config.eval.mode = "slide"`` or test-time
    augmentation (``config.eval.scales``, ``config.eval.flip``): :func:`forward_eval_fn`.
    """
    if config.eval.mode == "slide" or inference.augments(config):
        return forward_eval_fn(config)
    sharded = parallel.jit_eval_step(
        functools.partial(eval_step, ignore_label=VOID,
                          extra_inputs=tuple(config.input.extra_inputs)), mesh, sharding)

    def eval_fn(state: Any, batch: Mapping[str, Any]):
        padded = parallel.pad_batch(batch, mesh.shape[parallel.DATA], VOID)
        return sharded(state, parallel.global_batch(padded, mesh, per_process=False))

    return eval_fn


def forward_eval_fn(config: ml_collections.ConfigDict) -> Any:
    """``eval_fn(state, host_batch)`` of ``config.eval.mode = "slide"`` or test-time
    augmentation: each image of the batch goes through
    :func:`fcnjax.inference.image_forward` (windows, ``eval.batch_size`` a pass; the model
    compiles once, on the first call, for every later state) and :func:`fcnjax.inference.augment`,
    then is scored as ``eval_step`` scores, against its whole label (the loss of augmented
    scores: of the averaged probabilities). Not data parallel: every process runs the
    windows on its devices."""
    score = jax.jit(functools.partial(score_batch, reduction="sum", ignore_label=VOID))
    applies: list[inference.Apply] = []

    def eval_fn(state: Any, batch: Mapping[str, Any]):
        if not applies:
            applies.append(inference.make_apply(state.apply_fn))
        forward = inference.augment(config, inference.image_forward(config, applies[0],
                                                                    state_variables(state)))
        logits = np.stack([forward(image) for image in np.asarray(batch["image"])])
        _, measurements = score(logits, {k: batch[k] for k in ("label", "weight")
                                         if k in batch})
        del measurements["loss"]
        return measurements, np.argmax(logits, -1).astype(np.int32)

    return eval_fn

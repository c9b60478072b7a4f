"""The loss a config asks for: a weighted sum of terms, ``config.loss.terms``.

``(("xent", 1.0),)``, the default, is the papers' per-pixel cross-entropy alone, computed
exactly as before terms existed. Other terms: "focal" (:func:`fcnjax.losses.pixel_focal`),
"dice" (:func:`fcnjax.region_losses.soft_dice`) and "lovasz"
(:func:`fcnjax.region_losses.lovasz_softmax`), e.g. ``(("xent", 1.0), ("dice", 1.0))``.

Per-pixel terms (xent, focal) are reduced as ``config.loss.reduction`` says (a sum over the
labelled pixels, or their mean); region terms (dice, lovasz) are means over classes (and
images), in [0, 1], whatever the reduction. Every term skips void pixels and the pixels
the loss sampling drops; what a term cannot honour (:data:`UNSUPPORTED`) is said in one
line before anything compiles (:func:`notes`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import jax

from fcnjax import losses, region_losses
from fcnjax.run.errors import ConfigError

if TYPE_CHECKING:
    import ml_collections

TERMS = ("xent", "focal", "dice", "lovasz")
"""Names ``config.loss.terms`` may hold."""

UNSUPPORTED = {
    "dice": ("reduction",),
    "lovasz": ("reduction", "weight map"),
}
"""Loss settings a term ignores: "reduction" (a region term is a mean whatever
``config.loss.reduction``), "weight map" (``config.input.border_weights``)."""


class LossTerms(NamedTuple):
    """The terms of the loss and their options (static: part of the compiled step)."""
    terms: tuple[tuple[str, float], ...] = (("xent", 1.0),)
    focal_gamma: float = 2.0
    focal_alpha: float | None = None   # two classes: alpha_t = alpha (class 1), 1 - alpha
    dice_smooth: float = 1.0
    dice_squared: bool = False         # Milletari et al.'s sum p^2 + sum g^2
    dice_per_image: bool = False
    lovasz_per_image: bool = False


def term_value(name: str, spec: LossTerms, logits: jax.Array, labels: jax.Array, *,
               reduction: str, ignore_label: int, weights: jax.Array | None,
               class_weights: jax.Array | None, keep_prob: float, key: jax.Array | None
               ) -> jax.Array:
    """float32 (): the term ``name`` (not "xent") of ``logits`` (B, H, W, C) against
    ``labels`` (B, H, W), as ``spec`` configures it."""
    common = dict(ignore_label=ignore_label, class_weights=class_weights,
                  keep_prob=keep_prob, key=key)
    if name == "focal":
        per_pixel, mask = losses.pixel_focal(logits, labels, gamma=spec.focal_gamma,
                                             alpha=spec.focal_alpha, weights=weights,
                                             **common)
        return losses.reduce(per_pixel.sum(), mask.sum().astype(per_pixel.dtype), reduction)
    if name == "dice":
        return region_losses.soft_dice(logits, labels, weights=weights,
                                       smooth=spec.dice_smooth, squared=spec.dice_squared,
                                       per_image=spec.dice_per_image, **common)
    if name == "lovasz":
        return region_losses.lovasz_softmax(logits, labels, per_image=spec.lovasz_per_image,
                                            **common)
    raise ValueError(f"unknown loss term {name!r}; choose from {TERMS}")


def total_loss(logits: jax.Array, labels: jax.Array, spec: LossTerms = LossTerms(), *,
               reduction: str = "mean", ignore_label: int = losses.IGNORE_LABEL,
               weights: jax.Array | None = None, class_weights: jax.Array | None = None,
               keep_prob: float = 1.0, key: jax.Array | None = None
               ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """The weighted sum of ``spec.terms`` and the cross-entropy's ``(sum, count)`` (the
    measurements every run reports, whichever terms it trains on).

    logits float (B, H, W, C), labels int (B, H, W), weights float (B, H, W) or None,
    class_weights float (C,) or None; see ``losses.segmentation_loss``. Returns float32
    scalars. A term of weight 1 is added unscaled: the default spec is
    ``losses.segmentation_loss`` bit for bit.
    """
    xent, (total, count) = losses.segmentation_loss(
        logits, labels, reduction=reduction, ignore_label=ignore_label, weights=weights,
        class_weights=class_weights, keep_prob=keep_prob, key=key)
    loss = None
    for name, weight in spec.terms:
        value = xent if name == "xent" else term_value(
            name, spec, logits, labels, reduction=reduction, ignore_label=ignore_label,
            weights=weights, class_weights=class_weights, keep_prob=keep_prob, key=key)
        value = value if weight == 1.0 else weight * value
        loss = value if loss is None else loss + value
    return loss, (total, count)


def from_config(config: ml_collections.ConfigDict) -> LossTerms:
    """``LossTerms`` of ``config.loss`` (ConfigError, one line, for a value that cannot
    work: an unknown or repeated term, a weight that is not a finite number >= 0, focal
    gamma < 0, focal alpha outside [0, 1] or without two classes, dice smooth < 0)."""
    cfg = config.loss
    terms = cfg.get("terms", LossTerms().terms)
    try:
        terms = tuple((str(name), weight) for name, weight in terms)
    except (TypeError, ValueError):
        raise ConfigError(f"config.loss.terms = {terms!r}: give (name, weight) pairs, e.g. "
                          "(('xent', 1.0), ('dice', 1.0))") from None
    if not terms:
        raise ConfigError("config.loss.terms is empty: name at least one of "
                          f"{', '.join(TERMS)}, e.g. (('xent', 1.0),)")
    for name, weight in terms:
        if name not in TERMS:
            raise ConfigError(f"config.loss.terms names {name!r}: choose from "
                              f"{', '.join(TERMS)}")
        if (isinstance(weight, bool) or not isinstance(weight, (int, float))
                or not 0 <= weight < math.inf):
            raise ConfigError(f"config.loss.terms gives {name!r} the weight {weight!r}: it "
                              "must be a finite number >= 0")
    names = [name for name, _ in terms]
    if len(set(names)) != len(names):
        raise ConfigError(f"config.loss.terms names a term twice ({names}): give each once "
                          "with its weight")
    gamma, alpha = float(cfg.get("focal_gamma", 2.0)), float(cfg.get("focal_alpha", -1.0))
    if not 0 <= gamma < math.inf:
        raise ConfigError(f"config.loss.focal_gamma = {gamma}: it must be >= 0 (0: the "
                          "cross-entropy)")
    if alpha >= 0 and (alpha > 1 or config.model.num_classes != 2):
        raise ConfigError(f"config.loss.focal_alpha = {alpha}: the paper's alpha balances "
                          "two classes (in [0, 1], model.num_classes = 2); a negative value "
                          "turns it off, config.loss.class_weights weighs more classes")
    smooth = float(cfg.get("dice_smooth", 1.0))
    if not 0 <= smooth < math.inf:
        raise ConfigError(f"config.loss.dice_smooth = {smooth}: it must be >= 0")
    return LossTerms(terms=tuple((n, float(w)) for n, w in terms), focal_gamma=gamma,
                     focal_alpha=alpha if alpha >= 0 else None, dice_smooth=smooth,
                     dice_squared=bool(cfg.get("dice_squared", False)),
                     dice_per_image=bool(cfg.get("dice_per_image", False)),
                     lovasz_per_image=bool(cfg.get("lovasz_per_image", False)))


def notes(config: ml_collections.ConfigDict) -> list[str]:
    """One line per term of ``config.loss.terms`` that ignores a setting this config uses
    (:data:`UNSUPPORTED`); printed before the step compiles. Empty for the default."""
    spec, lines = from_config(config), []
    used = {"reduction": config.loss.reduction == "sum",
            "weight map": bool(config.input.get("border_weights", False))}
    for name, _ in spec.terms:
        ignored = [what for what in UNSUPPORTED.get(name, ()) if used[what]]
        if not ignored:
            continue
        why = {"reduction": "config.loss.reduction = 'sum' (it is a mean over classes, in "
                            "[0, 1], beside per-pixel terms summed over pixels: weigh it up "
                            "or use 'mean')",
               "weight map": "the border weight map (config.input.border_weights; the "
                             "Lovász extension weighs pixels by their errors' order)"}
        lines.append(f"fcnjax: loss term {name!r} does not support "
                     + "; nor ".join(why[what] for what in ignored))
    return lines

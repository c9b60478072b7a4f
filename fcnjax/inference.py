"""Inference on whole images of any size: the model's one forward function
(:func:`make_forward`), overlap-tile prediction (U-Net, section 2) and test-time averaging
over the dihedral group. Used by ``predict``, by ``evaluate``'s ISBI challenge scores and,
with ``config.eval.mode = "slide"``, by every evaluation (:func:`fcnjax.objective.make_eval_fn`).

A valid-convolution network maps a ``tile``-pixel input to the ``out``-pixel centre of it,
losing ``context = (tile - out) / 2`` pixels on each side. To predict an image of any size,
the image is mirrored by ``context`` pixels around (the paper's extrapolation of the missing
context), cut into tiles whose outputs abut, and the outputs are pasted together.

A network with max pools is translation-equivariant only for shifts that are a multiple of
its coarsest stride (16 for the paper's U-Net): within a tile, output pixel ``j`` goes
through a different up-sampling phase than pixel ``j + 1``. Tiles therefore advance by
``step``, the output side rounded down to a multiple of that stride (384 for 572 -> 388),
and each keeps its first ``step`` rows and columns. Then the pasted result equals the
untiled prediction of the mirrored image wherever both exist, and one tile shape serves
every image size (the prediction function compiles once).

Every other model can slide fixed windows over the image (``config.eval.mode = "slide"``,
:mod:`fcnjax.sliding`): one compile for every image size, the network's memory bounded by
the window. :func:`make_labels`, predict's path, reduces the scores to class ids one row of
windows at a time, so they never exist image-sized; evaluation keeps whole-image scores
(its loss and the ISBI scores need them).
:func:`image_forward` picks the way from the config for predict, evaluate and the
evaluation during training alike.

>>> plan = unet_plan(unet_geometry(), 572)
>>> plan.tile, plan.out, plan.context, plan.step
(572, 388, 92, 384)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fcnjax import sliding
from fcnjax.models.norm import state_variables
from fcnjax.models.unet import UNetGeometry, unet_geometry
from fcnjax.run import xla
from fcnjax.run.errors import ConfigError

TileFn = Callable[[np.ndarray], np.ndarray]
"""(N, tile, tile, C) -> (N, out, out, K): the network on a batch of tiles (e.g. jitted)."""

ImageFn = Callable[[np.ndarray], np.ndarray]
"""(H, W, C) -> (H, W, K): a whole-image prediction, e.g. ``predict_tiled`` with its plan."""


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """How an image is cut into tiles.

    Attributes:
      tile: side of each input tile.
      out: side of the network's output for one tile (its centre).
      context: input pixels lost on each side, ``(tile - out) // 2``.
      step: output pixels kept per tile and distance between neighbouring tiles
        (``out`` rounded down to a multiple of the network's period).
    """

    tile: int
    out: int
    context: int
    step: int

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Tiles along each axis for a ``height`` x ``width`` image."""
        return math.ceil(height / self.step), math.ceil(width / self.step)


def make_plan(tile: int, out: int, period: int = 1) -> TilePlan:
    """Plan for a network mapping ``tile`` pixels to their centred ``out`` pixels.

    period: shift (pixels) under which the network is translation-equivariant.
    Raises ValueError when the output is not centred or is smaller than ``period``.
    """
    if (tile - out) % 2 or out < 1 or out > tile:
        raise ValueError(f"a {tile}-pixel tile with a {out}-pixel output is not centred: "
                         "need tile - out even and 0 < out <= tile")
    step = out - out % period
    if step < 1:
        raise ValueError(f"the {out}-pixel output of a {tile}-pixel tile is smaller than the "
                         f"network's period {period}: use a larger tile")
    return TilePlan(tile, out, (tile - out) // 2, step)


def unet_plan(geometry: UNetGeometry, tile: int) -> TilePlan:
    """Plan for a valid-padding U-Net on ``tile``-pixel tiles (its period: ``max_stride``)."""
    if geometry.pad != 0:
        raise ValueError("overlap-tile prediction needs padding='valid': a 'same' U-Net sees "
                         "zeros at every tile border; predict its whole image at once")
    plan = make_plan(tile, geometry.output_size(tile), geometry.max_stride)
    if plan.context != geometry.output.offset:
        raise ValueError(f"the U-Net's output starts at input pixel {geometry.output.offset}, "
                         f"not at the centre offset {plan.context}")
    return plan


def mirror_for_tiles(image: np.ndarray, plan: TilePlan) -> np.ndarray:
    """The image mirrored by ``context`` on top and left and enough on the bottom and right
    for whole tiles: (H, W, C) -> ((ny - 1) * step + tile, (nx - 1) * step + tile, C)."""
    height, width = image.shape[:2]
    ny, nx = plan.grid(height, width)
    bottom = (ny - 1) * plan.step + plan.tile - plan.context - height
    right = (nx - 1) * plan.step + plan.tile - plan.context - width
    pad = ((plan.context, bottom), (plan.context, right), (0, 0))
    return np.pad(image, pad, mode="reflect")


def cut_tiles(padded: np.ndarray, plan: TilePlan, grid: tuple[int, int]) -> np.ndarray:
    """Tiles in row-major order: (ny * nx, tile, tile, C)."""
    ny, nx = grid
    return np.stack([padded[i * plan.step:i * plan.step + plan.tile,
                            j * plan.step:j * plan.step + plan.tile]
                     for i in range(ny) for j in range(nx)])


def run_batched(tile_fn: TileFn, tiles: np.ndarray, batch_size: int) -> np.ndarray:
    """``tile_fn`` on fixed-size batches (the last padded with zero tiles, then dropped)."""
    outputs = []
    with sliding.progress(len(tiles), "tile") as bar:
        for start in range(0, len(tiles), batch_size):
            batch = tiles[start:start + batch_size]
            kept = len(batch)
            outputs.append(np.asarray(tile_fn(sliding.fill_batch(batch, batch_size)))[:kept])
            bar.update(kept)
    return np.concatenate(outputs)


def predict_tiled(tile_fn: TileFn, image: np.ndarray, plan: TilePlan,
                  batch_size: int = 1) -> np.ndarray:
    """Predict every pixel of ``image`` tile by tile.

    image: float (H, W, C) with H, W >= 2 (mirroring needs two pixels). tile_fn: the network
    on (batch_size, tile, tile, C) tiles, returning (batch_size, out, out, K).
    Returns float (H, W, K): the output of each pixel, computed with mirrored context.
    """
    if image.ndim != 3 or min(image.shape[:2]) < 2:
        raise ValueError(f"need an (H, W, C) image with H, W >= 2, got {image.shape}")
    height, width = image.shape[:2]
    ny, nx = grid = plan.grid(height, width)
    tiles = cut_tiles(mirror_for_tiles(image, plan), plan, grid)
    outputs = run_batched(tile_fn, tiles, batch_size)
    if outputs.shape[1:3] != (plan.out, plan.out):
        raise ValueError(f"tile_fn returned {outputs.shape[1:3]} outputs for {plan.tile}-pixel "
                         f"tiles; the plan expects {plan.out}")
    kept = outputs[:, :plan.step, :plan.step].reshape(ny, nx, plan.step, plan.step, -1)
    pasted = kept.transpose(0, 2, 1, 3, 4).reshape(ny * plan.step, nx * plan.step, -1)
    return pasted[:height, :width]


DIHEDRAL = tuple((k, flip) for k in range(4) for flip in (False, True))
"""The 8 symmetries of the square: rotation by k * 90 degrees, then an optional mirror."""


def transform(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate the first two axes by ``k`` * 90 degrees, then mirror left-right if ``flip``."""
    x = np.rot90(x, k, axes=(0, 1))
    return x[:, ::-1] if flip else x


def untransform(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Inverse of :func:`transform`."""
    x = x[:, ::-1] if flip else x
    return np.rot90(x, -k, axes=(0, 1))


def dihedral_average(image_fn: ImageFn, image: np.ndarray,
                     symmetries: tuple[tuple[int, bool], ...] = DIHEDRAL) -> np.ndarray:
    """Test-time averaging: the mean of ``image_fn`` over rotated and mirrored copies of the
    image, each mapped back. image: (H, W, C); returns (H, W, K) float32 (e.g. probabilities).
    """
    total = None
    for k, flip in symmetries:
        out = untransform(np.asarray(image_fn(np.ascontiguousarray(transform(image, k, flip)))),
                          k, flip).astype(np.float32)
        total = out if total is None else total + out
    return total / len(symmetries)


Forward = Callable[[np.ndarray], np.ndarray]
"""float32 (H, W, C) normalised image -> float32 (H, W, num_classes) class scores: logits,
or with test-time augmentation the log of the averaged probabilities (either way their
softmax is the probabilities, their argmax the prediction)."""


def make_forward(config: ml_collections.ConfigDict, state: Any, tta: bool = False) -> Forward:
    """The one model-forward function: class scores of a whole image of any size.

    ``config.eval.mode`` "whole": valid-padding U-Nets go through overlap-tile prediction
    (tiles of ``crop_size``, in batches of ``config.eval.batch_size``); every other model
    runs on the whole image (jit compiles once per image size). "slide": fixed windows
    (:func:`image_forward`), one compile for every size. ``config.eval.scales`` and
    ``config.eval.flip``, or ``tta`` (the image's 8 rotations and mirrors): the log of the
    mean class probabilities over them instead (:func:`augment`).
    """
    return augment(config, model_forward(config, state), tta)


def symmetries(config: ml_collections.ConfigDict, tta: bool = False
               ) -> tuple[tuple[int, bool], ...]:
    """The rotations and mirrors averaged: all 8 with ``tta`` (the U-Net paper's), the image
    and its left-right mirror with ``config.eval.flip``, else the image alone."""
    if tta:
        return DIHEDRAL
    return ((0, False), (0, True)) if config.eval.flip else ((0, False),)


def augment(config: ml_collections.ConfigDict, forward: Forward, tta: bool = False) -> Forward:
    """``forward`` itself without test-time augmentation (scales (1.0,), no flip, no
    ``tta``), else the log of its mean probabilities over ``config.eval.scales`` and
    :func:`symmetries`, each mapped back to the image's size (:func:`augmented_average`)."""
    check_scales(config)
    if not (tta or augments(config)):
        return forward
    scales, chosen = tuple(float(s) for s in config.eval.scales), symmetries(config, tta)
    return lambda image: np.log(np.maximum(augmented_average(forward, image, scales, chosen),
                                           np.finfo(np.float32).tiny))


def augments(config: ml_collections.ConfigDict) -> bool:
    """Whether ``config.eval`` asks for test-time augmentation (scales other than (1.0,),
    or flip)."""
    return tuple(float(s) for s in config.eval.scales) != (1.0,) or bool(config.eval.flip)


def check_scales(config: ml_collections.ConfigDict) -> None:
    """ConfigError unless ``config.eval.scales`` is a non-empty tuple of numbers > 0 and
    ``config.eval.flip`` a bool."""
    scales = tuple(config.eval.scales)
    if not scales or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                             and s > 0 for s in scales):
        raise ConfigError(f"config.eval.scales = {scales}: give image scales > 0, e.g. "
                          "(0.5, 0.75, 1.0, 1.25, 1.5, 1.75) or (1.0,) for none")
    if not isinstance(config.eval.flip, bool):
        raise ConfigError(f"config.eval.flip = {config.eval.flip!r}: give True or False")


def resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (H, W, C) resized (bilinear, antialiased) to ``size``; itself at its size."""
    if tuple(x.shape[:2]) == tuple(size):
        return x
    return np.asarray(jax.image.resize(jnp.asarray(x), (*size, x.shape[-1]), "linear"),
                      np.float32)


def scaled_size(size: tuple[int, ...], scale: float) -> tuple[int, int]:
    """(H, W) times ``scale``, rounded, at least one pixel."""
    return tuple(max(1, round(n * scale)) for n in size[:2])


def augmented_average(forward: Forward, image: np.ndarray, scales: tuple[float, ...],
                      chosen: tuple[tuple[int, bool], ...] = ((0, False),)) -> np.ndarray:
    """Mean class probabilities of ``image`` (H, W, C) over every scale and symmetry: each
    copy resized, predicted, its softmax resized back and mapped back. float32 (H, W, K)."""
    def at_scale(scale: float):
        def probabilities(x: np.ndarray) -> np.ndarray:
            scores = forward(np.ascontiguousarray(resize(x, scaled_size(x.shape, scale))))
            return resize(softmax(scores), x.shape[:2])
        return probabilities

    total = sum(dihedral_average(at_scale(scale), image, chosen) for scale in scales)
    return (total / len(scales)).astype(np.float32)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, float32."""
    scores = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(scores)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


Apply = Callable[[Any, np.ndarray], np.ndarray]
"""(variables, float32 (N, h, w, C) batch) -> float32 (N, h', w', K) host logits: the model
compiled once per batch shape (a mapping of heads gives its main head, SIFT Flow's "sem")."""

EVAL_MODES = ("whole", "slide")
"""How an image goes through the model (``config.eval.mode``)."""


def make_apply(apply_fn: Callable[..., Any]) -> Apply:
    """The model's inference function, jitted once: keep it across evaluations, pass the
    variables of the moment (``image_forward``; ``{"params": ...}``, with ``"batch_stats"``
    for a model with BatchNorm, whose running statistics it then uses)."""
    apply = xla.jit(lambda variables, x: apply_fn(variables, x, train=False))

    def run(variables: Any, batch: np.ndarray) -> np.ndarray:
        return np.asarray(main_scores(apply(variables, jnp.asarray(batch))), np.float32)

    return run


def main_scores(outputs: Any) -> Any:
    """The logits predicted: the model's output, or of a mapping of heads the semantic one
    (SIFT Flow's "sem")."""
    return outputs["sem"] if isinstance(outputs, dict) else outputs


def model_forward(config: ml_collections.ConfigDict, state: Any) -> Forward:
    """Class scores (logits) of a whole image: the model, tile by tile if it needs it."""
    return image_forward(config, make_apply(state.apply_fn), state_variables(state))


def image_forward(config: ml_collections.ConfigDict, apply: Apply, variables: Any) -> Forward:
    """The forward of ``config.eval.mode`` with ``variables`` (:func:`make_apply`): the one
    path of predict, evaluate and the evaluation during training; :func:`image_bands`
    assembled into one array."""
    bands = image_bands(config, apply, variables)
    return lambda image: sliding.assemble(bands(image), image.shape[:2])


Bands = Callable[[np.ndarray], Iterator[sliding.Band]]
"""float32 (H, W, C) normalised image -> (y, (rows, W, K) class scores) bands covering its
rows top to bottom: one band, the whole image, except when sliding windows."""


def image_bands(config: ml_collections.ConfigDict, apply: Apply, variables: Any) -> Bands:
    """The class scores of ``config.eval.mode`` with ``variables``, in bands of rows.

    "whole": the image in one pass (a valid U-Net tile by tile, tiles of ``crop_size``), one
    band; "slide": ``eval.window`` windows every ``eval.stride`` pixels blended by
    ``eval.blend``, ``eval.batch_size`` a pass, a band per row of windows
    (:func:`fcnjax.sliding.slide_bands`; a valid U-Net: overlap-tile with tiles of
    ``eval.window``, one band).
    """
    check_eval(config)
    if config.model.name == "nyud_late_fusion":
        raise ConfigError("nyud_late_fusion needs two inputs (color and HHA images); "
                          "predict reads one image per file")
    run = functools.partial(apply, variables)
    cfg, batch_size = config.model, config.eval.batch_size
    valid_unet = cfg.name == "unet" and cfg.get("padding") == "valid"
    if config.eval.mode == "slide" and not valid_unet:
        window, stride = slide_settings(config)
        pad_mode = "reflect" if cfg.name == "unet" else "constant"
        return functools.partial(sliding.slide_bands, run, window=window, stride=stride,
                                 blend=config.eval.blend, batch_size=batch_size,
                                 pad_mode=pad_mode)
    if valid_unet:
        tile = slide_settings(config)[0][0] if config.eval.mode == "slide" else \
            config.input.crop_size[0]
        plan = unet_plan(model_geometry(config), tile)
        return lambda image: iter([(0, predict_tiled(run, image, plan, batch_size))])
    return lambda image: iter([(0, run(image[None])[0])])


Labels = Callable[[np.ndarray], np.ndarray]
"""float32 (H, W, C) normalised image -> (H, W) predicted class ids."""


def make_labels(config: ml_collections.ConfigDict, state: Any, tta: bool = False) -> Labels:
    """The predicted class of every pixel, as :func:`make_forward` scores it. Without
    test-time augmentation the scores are reduced band by band (:func:`image_bands`), so
    sliding windows over a huge image never hold its (H, W, K) scores: beside the image,
    only the uint8 ids (uint16 from 256 classes on) grow with it."""
    if tta or augments(config):
        forward = make_forward(config, state, tta)
        return lambda image: np.argmax(forward(image), axis=-1)
    bands = image_bands(config, make_apply(state.apply_fn), state_variables(state))
    dtype = np.uint8 if config.model.num_classes < 256 else np.uint16

    def labels(image: np.ndarray) -> np.ndarray:
        out = np.empty(image.shape[:2], dtype)
        for y, band in bands(image):
            out[y:y + band.shape[0]] = np.argmax(band, axis=-1)
        return out

    return labels


def model_geometry(config: ml_collections.ConfigDict) -> UNetGeometry:
    """The U-Net geometry of ``config.model``."""
    cfg = config.model
    return unet_geometry(cfg.levels, cfg.padding, cfg.upsampling)


def pair(config: ml_collections.ConfigDict, name: str, default: tuple[int, ...]
         ) -> tuple[int, int]:
    """``config.eval.<name>`` as (height, width), ``default`` when empty; ConfigError when
    it is not two whole numbers >= 1."""
    value = tuple(config.eval[name]) or tuple(default)
    if len(value) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                  for n in value):
        raise ConfigError(f"config.eval.{name} = {tuple(config.eval[name])}: give () or "
                          "(height, width) in pixels, e.g. (512, 512)")
    return value


def slide_settings(config: ml_collections.ConfigDict) -> tuple[tuple[int, int],
                                                               tuple[int, int]]:
    """(window, stride) of ``config.eval``: window () is ``config.input.crop_size``, stride
    () two thirds of the window (MMSegmentation's 512 / 341). ConfigError when malformed or
    when a stride exceeds its window (pixels no window covers)."""
    window = pair(config, "window", config.input.crop_size)
    stride = pair(config, "stride", tuple(max(1, 2 * n // 3) for n in window))
    if any(s > w for s, w in zip(stride, window)):
        raise ConfigError(f"config.eval.stride = {stride} exceeds config.eval.window = "
                          f"{window}: pixels between windows would have no prediction; "
                          "give a stride <= the window")
    return window, stride


def check_eval(config: ml_collections.ConfigDict) -> None:
    """ConfigError (one line) for a ``config.eval`` the model cannot predict with: an
    unknown mode or blend, a malformed window or stride, a model with more than one image
    input (NYUDv2 late fusion) or more than one scored head (SIFT Flow) when sliding; a valid
    U-Net's window must be square, a size it takes, its stride () or the plan's step."""
    cfg = config.eval
    check_scales(config)
    if cfg.mode not in EVAL_MODES:
        raise ConfigError(f"config.eval.mode = {cfg.mode!r}: choose one of {EVAL_MODES}")
    if cfg.blend not in sliding.BLENDS:
        raise ConfigError(f"config.eval.blend = {cfg.blend!r}: choose one of {sliding.BLENDS}")
    window, stride = slide_settings(config)
    if cfg.mode != "slide":
        return
    if tuple(config.input.extra_inputs) or tuple(config.input.extra_labels):
        raise ConfigError("config.eval.mode = 'slide' runs one image input and scores one "
                          "head; this model has config.input.extra_inputs "
                          f"{tuple(config.input.extra_inputs)} and extra_labels "
                          f"{tuple(config.input.extra_labels)}: use mode 'whole'")
    if config.model.name != "unet" or config.model.get("padding") != "valid":
        return
    if window[0] != window[1]:
        raise ConfigError(f"config.eval.window = {window}: a valid U-Net's overlap-tile "
                          "windows are square, e.g. (572, 572)")
    try:
        plan = unet_plan(model_geometry(config), window[0])
    except ValueError as error:
        raise ConfigError(f"config.eval.window = {window}: {error}") from None
    if tuple(cfg.stride) and stride != (plan.step, plan.step):
        raise ConfigError(f"config.eval.stride = {stride}: a valid U-Net's tiles abut "
                          f"exactly, {plan.step} pixels apart for {window[0]}-pixel windows; "
                          "give () or that step")

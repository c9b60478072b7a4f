"""Weight surgery: PyTorch weights into fcnjax parameter trees, and nets grown in stages.

PyTorch keeps convolution kernels OIHW, transposed-convolution kernels IOHW and fully
connected weights as ``(out, C*H*W)`` (flattened in C, H, W order); fcnjax keeps HWIO
kernels (:mod:`fcnjax.weights.layouts`). Every converter maps names through the model's own
structure (its backbone table and head plan), checks every key and shape before converting
anything, and returns a plain numpy tree.

Weight files are read by :mod:`fcnjax.weights.pytorch` (``torch.load(weights_only=True)``
and nothing else: a file that would need to run code to load is refused, never unpickled).

Typical use::

    params = surgery.from_pytorch_fcn("fcn8s_from_caffe.pth", models.fcn8s())
    trunk = surgery.from_torchvision_vgg16("vgg16-397923af.pth")
    params16, report = surgery.stage_init(models.fcn16s(), params32, key, image)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from fcnjax.models.trunk import ConvLayer, Trunk
from fcnjax.models.vgg import VGG16_STAGES, vgg16
from fcnjax.weights import pytorch
from fcnjax.weights.layouts import (CONV, DECONV, LINEAR, SAME, Layout, WeightFileError,
                                    check_bilinear, mismatch_report, param_shapes)
from fcnjax.weights.pytorch import Weights

Shape = tuple[int, ...]
Path = tuple[str, ...]
StateDict = Mapping[str, np.ndarray]

def _shapes(tree: Any) -> dict[str, Shape]:
    """``{"trunk/conv1_1/kernel": shape}`` for every leaf (arrays or ShapeDtypeStructs)."""
    return {"/".join(path): tuple(leaf.shape)
            for path, leaf in traverse_util.flatten_dict(tree).items()}


def check_matches(expected_tree: Any, converted_tree: Any, source: str = "converted params"
                  ) -> None:
    """Raise :class:`WeightFileError` unless both trees have the same paths and shapes.

    expected_tree: e.g. ``jax.eval_shape(model.init, key, image)["params"]``.
    """
    report = mismatch_report(_shapes(expected_tree), _shapes(converted_tree))
    if report:
        raise WeightFileError(f"{source} does not match the model's parameters: {report}")


def _check_keys(state_dict: StateDict, keys: Mapping[str, tuple[Path, Layout]],
                expected_tree: Any, source: str, *, checked: Mapping[str, Shape] | None = None,
                ignored: tuple[str, ...] = ()) -> None:
    """Raise :class:`WeightFileError` listing every key of ``state_dict`` that does not fit.

    keys: file key -> (path in our tree, layout); each expected file shape follows from
    ``expected_tree`` through the layout. checked: more keys with their file shapes
    (tested, not converted). ignored: keys the file may hold and we drop.
    """
    expected = _shapes(expected_tree)
    want = {key: layout.file_shape(expected["/".join(path)])
            for key, (path, layout) in keys.items()}
    want.update(checked or {})
    found = {k: tuple(np.shape(v)) for k, v in state_dict.items() if k not in ignored}
    report = mismatch_report(want, found)
    if report:
        raise WeightFileError(f"{source} does not match the model: {report}")


def _convert(state_dict: StateDict, keys: Mapping[str, tuple[Path, Layout]],
             expected_tree: Any, source: str) -> dict:
    """Our tree from a checked ``state_dict``: each key laid out as ours, in our dtype."""
    expected = traverse_util.flatten_dict(expected_tree)
    flat = {}
    for key, (path, layout) in keys.items():
        array = layout.to_ours(np.asarray(state_dict[key]), tuple(expected[path].shape))
        flat[path] = np.ascontiguousarray(array, dtype=expected[path].dtype)
    converted = traverse_util.unflatten_dict(flat)
    check_matches(expected_tree, converted, f"params converted from {source}")
    return converted


def torchvision_vgg16_keys() -> dict[str, tuple[Path, Layout]]:
    """torchvision ``vgg16`` key -> (trunk path, layout).

    ``features`` holds (Conv2d, ReLU) per conv and a MaxPool2d per stage of
    :data:`VGG16_STAGES`; ``classifier`` holds (Linear, ReLU, Dropout) for fc6 and fc7.
    """
    keys, index = {}, 0
    for stage, (convs, _) in enumerate(VGG16_STAGES, start=1):
        for i in range(1, convs + 1):
            name = f"conv{stage}_{i}"
            keys[f"features.{index}.weight"] = ((name, "kernel"), CONV)
            keys[f"features.{index}.bias"] = ((name, "bias"), SAME)
            index += 2
        index += 1
    for name, index in (("fc6", 0), ("fc7", 3)):
        keys[f"classifier.{index}.weight"] = ((name, "kernel"), LINEAR)
        keys[f"classifier.{index}.bias"] = ((name, "bias"), SAME)
    return keys


TORCHVISION_IGNORED = ("classifier.6.weight", "classifier.6.bias")
"""The 1000-way ImageNet classifier: FCNs replace it with ``score_fr``."""


def from_torchvision_vgg16(weights: Weights) -> dict:
    """torchvision VGG16 weights (state dict or ``.pth`` path) -> VGG16 trunk params.

    fc6's (4096, 25088) matrix becomes a (7, 7, 512, 4096) kernel and fc7's a
    (1, 1, 4096, 4096) one: the paper's "convolutionalization". Returns the tree that
    goes under ``params["trunk"]`` of any VGG16 FCN (see :func:`stage_init`).
    """
    state_dict, source = pytorch.read(weights)
    expected = param_shapes(Trunk(vgg16()), 3)
    keys = torchvision_vgg16_keys()
    _check_keys(state_dict, keys, expected, source, ignored=TORCHVISION_IGNORED)
    return _convert(state_dict, keys, expected, source)


def score_layers(model: Any) -> tuple[str, ...]:
    """Names of an FCN's score layers: ``score_fr`` then one per skip."""
    return ("score_fr", *(f"score_{f.layer}" for f in model.plan().fusions))


def upscore_kernels(model: Any) -> dict[str, int]:
    """Kernel size of each upsampling layer, by name (``{"upscore2": 4, "upscore8": 16}``)."""
    plan = model.plan()
    kernels = {f.upscore: f.kernel for f in plan.fusions}
    kernels[plan.upscore] = plan.kernel
    return kernels


def pytorch_fcn_keys(model: Any) -> dict[str, tuple[Path, Layout]]:
    """pytorch-fcn key -> (path, layout) for an :class:`~fcnjax.models.FCN`.

    Trunk convolutions come from the backbone table, score and upsampling layers from
    the head plan; upsampling layers are included only when they are parameters.
    """
    keys = {}
    for layer in model.backbone.layers:
        if isinstance(layer, ConvLayer):
            keys[f"{layer.name}.weight"] = (("trunk", layer.name, "kernel"), CONV)
            keys[f"{layer.name}.bias"] = (("trunk", layer.name, "bias"), SAME)
        if layer.name == model.backbone.output:
            break
    for name in score_layers(model):
        keys[f"{name}.weight"] = ((name, "kernel"), CONV)
        keys[f"{name}.bias"] = ((name, "bias"), SAME)
    if model.learnable_upsampling:
        for name in upscore_kernels(model):
            keys[f"{name}.weight"] = ((name, "kernel"), DECONV)
    return keys


def from_pytorch_fcn(weights: Weights, model: Any, *, in_channels: int = 3) -> dict:
    """wkentaro/pytorch-fcn FCN32s/16s/8s/8sAtOnce weights -> ``model``'s params.

    weights: a state dict (numpy arrays or tensors) or the path of a ``.pth`` file.
    model: the matching fcnjax FCN (``models.fcn8s()`` for FCN8s ...). With fixed
      upsampling the file's ``upscore*`` weights must be the bilinear kernel (they are
      in the reference); learned ones need ``learnable_upsampling=True``.
    Raises :class:`WeightFileError` naming missing, unexpected and misshapen keys.
    """
    state_dict, source = pytorch.read(weights)
    classes = model.num_classes
    checked = {} if model.learnable_upsampling else {
        f"{name}.weight": (classes, classes, k, k) for name, k in upscore_kernels(model).items()}
    expected = param_shapes(model, in_channels)
    keys = pytorch_fcn_keys(model)
    _check_keys(state_dict, keys, expected, source, checked=checked)
    _check_bilinear(state_dict, model, source)
    return _convert(state_dict, keys, expected, source)


def _check_bilinear(state_dict: StateDict, model: Any, source: str) -> None:
    """With fixed upsampling, every ``upscore*`` weight in the file must be bilinear."""
    if model.learnable_upsampling:
        return
    kernels = {f"{name}.weight": DECONV.to_ours(np.asarray(state_dict[f"{name}.weight"]), ())
               for name in upscore_kernels(model)}
    check_bilinear(kernels, source)


@dataclasses.dataclass(frozen=True)
class TransplantReport:
    """What :func:`transplant` did, by "/"-joined parameter path.

    copied: taken from the source. kept: absent from the source, left as they were.
    mismatched: (path, source shape, target shape) in both trees with other shapes; kept.
    unused: source leaves with no place in the target.
    """

    copied: tuple[str, ...]
    kept: tuple[str, ...]
    mismatched: tuple[tuple[str, Shape, Shape], ...]
    unused: tuple[str, ...]

    @property
    def new(self) -> tuple[str, ...]:
        """Target leaves not taken from the source (kept or mismatched)."""
        return self.kept + tuple(path for path, _, _ in self.mismatched)


def _matching_leaves(target: Any, source: Any) -> tuple[dict[Path, np.ndarray],
                                                        TransplantReport]:
    """Source leaves whose path and shape exist in ``target``, and the report."""
    want = traverse_util.flatten_dict(target)
    have = traverse_util.flatten_dict(source)
    copied = {p: np.asarray(have[p], dtype=want[p].dtype) for p in want
              if p in have and tuple(have[p].shape) == tuple(want[p].shape)}
    report = TransplantReport(
        copied=tuple("/".join(p) for p in copied),
        kept=tuple("/".join(p) for p in want if p not in have),
        mismatched=tuple(("/".join(p), tuple(have[p].shape), tuple(want[p].shape))
                         for p in want if p in have and p not in copied),
        unused=tuple("/".join(p) for p in have if p not in want))
    return copied, report


def transplant(target_params: Any, source_params: Any) -> tuple[dict, TransplantReport]:
    """Copy every source leaf whose path and shape match into ``target_params``.

    Pure: returns a new numpy tree (the inputs are untouched) and a
    :class:`TransplantReport`. Leaves are cast to the target's dtype.
    """
    copied, report = _matching_leaves(target_params, source_params)
    flat = {p: copied.get(p, np.asarray(leaf))
            for p, leaf in traverse_util.flatten_dict(target_params).items()}
    return traverse_util.unflatten_dict(flat), report


def _init_missing(model: Any, shapes: Any, present: set[Path], rng: jax.Array,
                  sample_input: Any) -> dict[Path, np.ndarray]:
    """Initial values of the leaves of ``shapes`` outside ``present``, and nothing else.

    The model runs under ``jax.jit`` on zero stand-ins for the present leaves, so XLA drops
    the forward pass and their initializers: only the missing leaves are computed.
    """
    flat = traverse_util.flatten_dict(shapes)

    def init(rng):
        stand_in = {p: jnp.zeros(s.shape, s.dtype) for p, s in flat.items() if p in present}
        image = jnp.zeros(sample_input.shape, sample_input.dtype)
        _, variables = model.apply({"params": traverse_util.unflatten_dict(stand_in)}, image,
                                   rngs={"params": rng}, mutable=["params"])
        made = traverse_util.flatten_dict(variables["params"])
        return {p: made[p] for p in flat if p not in present}

    return {p: np.asarray(leaf) for p, leaf in jax.jit(init)(rng).items()}


def stage_init(new_model: Any, old_params: Any, rng: jax.Array, sample_input: Any
               ) -> tuple[dict, TransplantReport]:
    """Params for ``new_model`` grown from a coarser net's, as the reference trains FCNs.

    FCN-16s from FCN-32s, FCN-8s from FCN-16s, or any FCN from ``{"trunk": vgg}``
    (FCN-8s at-once). Every leaf whose path and shape match is copied; only score layers
    (zero, so the new skips start silent) and upsampling kernels (bilinear) may be new,
    and only they are initialised: the trunk is never drawn at random.

    sample_input: a (B, H, W, C) batch or its ``jax.ShapeDtypeStruct``; it fixes the input
      channels (1x1 pixels suffice) and is never run through the net.
    Returns (params as numpy, report); ``report.new`` lists the fresh leaves.
    """
    shapes = jax.eval_shape(new_model.init, rng, sample_input)["params"]
    copied, report = _matching_leaves(shapes, old_params)
    scores, upscores = set(score_layers(new_model)), set(upscore_kernels(new_model))
    foreign = [p for p in report.new if p.split("/")[0] not in scores | upscores]
    if foreign:
        raise ValueError(
            f"the old params lack {', '.join(foreign)} (or hold other shapes); staged init "
            f"may only add score layers {sorted(scores)} and upsampling layers")
    fresh = _init_missing(new_model, shapes, set(copied), rng, sample_input)
    for path, leaf in fresh.items():
        if path[0] in scores:
            fresh[path] = np.zeros_like(leaf)
    flat = {p: copied[p] if p in copied else fresh[p] for p in traverse_util.flatten_dict(shapes)}
    return traverse_util.unflatten_dict(flat), report

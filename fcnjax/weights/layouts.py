"""What every foreign weight file shares: its error, the array layouts it is stored in, the
one report of keys that do not fit, and the one check of fixed bilinear kernels.

PyTorch (:mod:`fcnjax.weights.surgery`), Caffe (:mod:`fcnjax.weights.caffe`) and orbax
checkpoints (:mod:`fcnjax.run.checkpoint`) all report a file of another model through
:func:`mismatch_report`; PyTorch and Caffe files both check their fixed upsampling kernels
with :func:`bilinear_errors`. NCHW / OIHW exist only here and in the readers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from fcnjax.models import layers
from fcnjax.run.errors import DataError

Shape = tuple[int, ...]

BILINEAR_TOLERANCE = 1e-6
"""Largest |difference| from the bilinear kernel a fixed upsampling weight may have."""


class WeightFileError(DataError):
    """A weight file that cannot be read, or that does not fit the model (a user error: the
    command lines print it as one line)."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a framework stores a parameter that fcnjax keeps with shape ``ours``.

    file_shape: our shape -> the shape in the file.
    to_ours: (file array, our shape) -> array in our layout.
    """

    name: str
    file_shape: Callable[[Shape], Shape]
    to_ours: Callable[[np.ndarray, Shape], np.ndarray]


def _transpose(array: np.ndarray, axes: tuple[int, ...], block: int = 16) -> np.ndarray:
    """``array.transpose(axes)`` as a C-contiguous copy, made a few rows of axis 0 at a time.

    Copying a 400 MB OIHW kernel to HWIO in one go reads memory at a 100 KB stride per
    element; by blocks, each source block stays in cache (about 3x faster for fc6).
    """
    out = np.empty([array.shape[i] for i in axes], array.dtype)
    where = [slice(None)] * array.ndim
    for start in range(0, array.shape[0], block):
        where[axes.index(0)] = slice(start, start + block)
        out[tuple(where)] = array[start:start + block].transpose(axes)
    return out


SAME = Layout("as is", lambda s: tuple(s), lambda a, s: a)
CONV = Layout("Conv2d OIHW", lambda s: (s[3], s[2], s[0], s[1]),
              lambda a, s: _transpose(a, (2, 3, 1, 0)))
DECONV = Layout("ConvTranspose2d IOHW", lambda s: (s[2], s[3], s[0], s[1]),
                lambda a, s: _transpose(a, (2, 3, 0, 1)))
LINEAR = Layout("Linear (out, C*H*W)", lambda s: (s[3], s[2] * s[0] * s[1]),
                lambda a, s: CONV.to_ours(a.reshape(CONV.file_shape(s)), s))
"""A fully connected layer over a C x H x W map, as the H x W VALID conv it equals."""


def param_shapes(model: Any, inputs: Any) -> Any:
    """``model``'s params as ShapeDtypeStructs, for ``inputs``: channels per input
    (an int, or ``{stream: channels}`` for late fusion); nothing is computed. The template
    every converted file is checked against."""
    def image(channels):
        return jnp.zeros((1, 32, 32, channels), jnp.float32)

    sample = ({k: image(c) for k, c in inputs.items()} if isinstance(inputs, Mapping)
              else image(inputs))
    return jax.eval_shape(model.init, jax.random.key(0), sample)["params"]


def _shape_text(shape: Any) -> str:
    return str(tuple(shape))


def mismatch_report(expected: Mapping[str, Any], found: Mapping[str, Any], *,
                    what: str = "keys", same: Callable[[Any, Any], bool] | None = None,
                    describe: Callable[[Any], str] = _shape_text, limit: int | None = None,
                    order: Callable[[Iterable[str]], list[str]] = list) -> str | None:
    """The keys of ``found`` (a file's, by name: shape) that do not fit ``expected``, as
    "missing <what> (n): ...; unexpected <what> (n): ...; wrong shapes (n): k: found S,
    expected S", or None when they fit. same: whether two shapes fit (default: equal
    tuples); describe: a shape as text; limit: at most that many names per part; order:
    the order to list names in."""
    same = same or (lambda a, b: tuple(a) == tuple(b))
    missing = order(k for k in expected if k not in found)
    unexpected = order(k for k in found if k not in expected)
    wrong = [f"{k}: found {describe(found[k])}, expected {describe(expected[k])}"
             for k in order(k for k in expected if k in found)
             if not same(found[k], expected[k])]
    parts = []
    for title, names in ((f"missing {what}", missing), (f"unexpected {what}", unexpected),
                         ("wrong shapes", wrong)):
        if names:
            shown = names if limit is None else names[:limit]
            more = " ..." if len(shown) < len(names) else ""
            parts.append(f"{title} ({len(names)}): {', '.join(shown)}{more}")
    return "; ".join(parts) or None


def bilinear_errors(kernels: Mapping[str, np.ndarray]) -> list[str]:
    """The names of the fixed upsampling kernels (ours, HWIO: (k, k, C, C)) that are not the
    bilinear kernel, each with its largest difference; empty when all of them are."""
    bad = []
    for name, kernel in kernels.items():
        kernel = np.asarray(kernel)
        error = float(np.max(np.abs(kernel - layers.bilinear_kernel(kernel.shape[0],
                                                                     kernel.shape[-1]))))
        if error > BILINEAR_TOLERANCE:
            bad.append(f"{name} (max |difference| {error:.3g})")
    return bad


def check_bilinear(kernels: Mapping[str, np.ndarray], source: str,
                   error: type[WeightFileError] = WeightFileError) -> None:
    """``error`` when a fixed upsampling kernel of ``source`` is not bilinear (the model's
    upsampling is fixed, so learned weights would be dropped)."""
    bad = bilinear_errors(kernels)
    if bad:
        raise error(
            f"{source}: {', '.join(bad)} differ from the bilinear kernel, but the model's "
            "upsampling is fixed; build it with learnable_upsampling=True to load learned "
            "upsampling weights")

"""Building blocks with Caffe's semantics: padded convs, ceil-mode pools, LRN, bilinear upscore.

Everything is NHWC with HWIO kernels. Parameters are float32; ``dtype`` is the compute dtype.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fcnjax.models import coord_map

Dtype = Any

he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
"""Gaussian with std sqrt(2 / fan_in): the U-Net paper's init, and a sound one for ReLU trunks."""


def concrete(*dims: Any) -> bool:
    """Whether every one of ``dims`` is a plain integer. Under :mod:`jax.export`'s symbolic
    shapes a height or width is an expression such as ``floordiv(h + 199, 2)``, on which a
    Python comparison may have no answer: checks and choices that need the number are made
    only when this is True (the geometry has already guaranteed what they would check)."""
    return all(isinstance(d, (int, np.integer)) for d in dims)


def wide_kernel_on_small_map(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...]) -> bool:
    """Whether a convolution's input gradient is cheaper as per-tap matrix products than as
    XLA:CPU's convolution: when the map has at most C_in * C_out / 1024 pixels (U-Net's
    bottom: 1024 -> 1024 channels on 10x10 to 32x32 maps). There XLA's form spends most of
    its time transposing the flipped kernel (3x3x1024x1024: 71 ms on one core); measured
    one core, fp32 (BENCHMARKS.md): 1024->1024 on 10x10 108 -> 33 ms, 16x16 113 -> 55 ms,
    1024->512 on 16x16 31 -> 21 ms; outside the rule it loses (1024->512 on 30x30 72 -> 85).
    False for a symbolic map size (an exported model: inference needs no gradient)."""
    if not concrete(*x_shape[:3]):
        return False
    pixels = math.prod(x_shape[:3])
    return pixels * 1024 <= kernel_shape[2] * kernel_shape[3]


@jax.custom_vjp
def _small_map_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _small_map_conv_fwd(x, kernel):
    return _small_map_conv(x, kernel), (x, kernel)


def _small_map_conv_bwd(residuals, g):
    """Input gradient: for every tap, the padded output gradient times that tap's kernel
    transposed (a product whose transposed operand the dot library reads as it is), summed;
    kernel gradient: XLA's own."""
    x, kernel = residuals
    k, (h, w) = kernel.shape[0], x.shape[1:3]
    padded = jnp.pad(g, ((0, 0), (k - 1, k - 1), (k - 1, k - 1), (0, 0)))
    dx = sum(jnp.einsum("nhwo,io->nhwi", padded[:, i:i + h, j:j + w],
                        kernel[k - 1 - i, k - 1 - j]) for i in range(k) for j in range(k))
    _, kernel_vjp = jax.vjp(lambda kern: jax.lax.conv_general_dilated(
        x, kern, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")), kernel)
    return dx.astype(x.dtype), kernel_vjp(g)[0]


_small_map_conv.defvjp(_small_map_conv_fwd, _small_map_conv_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         **kwargs):
    """``jax.lax.conv_general_dilated`` for ``nn.Conv``, with the small-map input gradient
    (:func:`wide_kernel_on_small_map`) for plain stride-1 VALID NHWC convolutions on the CPU.
    The forward and the kernel gradient are XLA's; the input gradient is the same sum in
    another order (~1e-7 apart). Being a ``jax.custom_vjp``, such a layer takes reverse-mode
    derivatives only: ``jax.jvp`` / ``jacfwd`` through it raise (on the CPU, for those
    layers)."""
    plain = (lhs.ndim == 4 and padding == "VALID" and tuple(window_strides) == (1, 1)
             and feature_group_count == 1 and not any(d not in (None, (1, 1))
                                                      for d in (lhs_dilation, rhs_dilation)))
    if (plain and jax.default_backend() == "cpu" and rhs.shape[0] > 1
            and wide_kernel_on_small_map(lhs.shape, rhs.shape)):
        return _small_map_conv(lhs, rhs)
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, **kwargs)


class PaddedApartConv(nn.Conv):
    """``nn.Conv`` (same parameters, same names) that zero-pads its input by ``pad_apart``
    on every side and then convolves with its own ``padding`` (VALID): the same numbers,
    bit for bit.

    XLA's CPU backend computes the weight gradient of a padded convolution 1.4-1.8x slower
    than that of the same convolution of a padded map (3x3, 64 channels, 252x252: 130 vs
    74 ms, one core; BENCHMARKS.md). XLA folds the pad back into the forward convolution;
    only the weight gradient reads the padded map (one pad copy per layer; not yet timed on
    a GPU).
    """

    pad_apart: int = 0

    def __call__(self, inputs: jax.Array) -> jax.Array:
        p = self.pad_apart
        return super().__call__(jnp.pad(inputs, ((0, 0), (p, p), (p, p), (0, 0))))


def conv(name: str, features: int, kernel: int, *, stride: int = 1, pad: int = 0,
         groups: int = 1, dtype: Dtype = jnp.float32, zero_init: bool = False) -> nn.Conv:
    """A Caffe-style convolution: square kernel, symmetric integer padding, float32 params."""
    return PaddedApartConv(
        features, (kernel, kernel), strides=(stride, stride), padding="VALID", pad_apart=pad,
        feature_group_count=groups, dtype=dtype, param_dtype=jnp.float32, name=name,
        conv_general_dilated=conv_general_dilated,
        kernel_init=nn.initializers.zeros if zero_init else he_normal,
        bias_init=nn.initializers.zeros)


class FullyConnectedConv(nn.Module):
    """A VALID, stride-1 convolution computed as one matrix product over gathered windows.

    The fully connected layers made convolutional (fc6: 7x7x512 -> 4096 on VGG16's pool5,
    fc7: 1x1) have few output positions and huge kernels. Gathering each position's
    ``k x k x C`` window with ``k * k`` slices and multiplying by the ``(k*k*C, features)``
    kernel is the same arithmetic as the convolution, in the GEMM shape that matrix
    libraries run best (``BENCHMARKS.md`` measures it). Parameters are those of
    :func:`conv` (``kernel`` (k, k, C, features) HWIO, ``bias``).
    """

    features: int
    kernel_size: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (B, H, W, C) -> (B, H - k + 1, W - k + 1, features)."""
        k, (h, w) = self.kernel_size, x.shape[1:3]
        if concrete(h, w) and (h < k or w < k):
            raise ValueError(f"{self.name}: a {k}x{k} VALID convolution needs a map at least "
                             f"{k}x{k}, got {h}x{w}")
        kernel = self.param("kernel", he_normal, (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        windows = jnp.concatenate(
            [x[:, i:i + h - k + 1, j:j + w - k + 1] for i in range(k) for j in range(k)], axis=-1)
        y = jnp.einsum("bhwi,io->bhwo", windows.astype(self.dtype),
                       kernel.reshape(-1, self.features).astype(self.dtype))
        return y + bias.astype(self.dtype)


def max_pool(x: jax.Array, kernel: int, stride: int, pad: int = 0) -> jax.Array:
    """Max pool that rounds its output size up, as Caffe does (PyTorch's ``ceil_mode=True``).

    x: (B, H, W, C). The extra bottom/right window, when there is one, covers the last
    rows and columns that a rounding-down pool would drop.

    Windows that tile the map (kernel = stride, no padding: VGG's and U-Net's 2x2/2) are
    a reshape and a max over each window's own axes, whose gradient is one elementwise
    select; XLA's select-and-scatter gradient of the general form cost 5 ms more per FCN-8s
    train step (8x500x500 bf16, H200; BENCHMARKS.md). Where a window holds several equal
    maxima, this form splits their gradient equally (Caffe gives it all to the first).
    """
    pads = []
    for size in x.shape[1:3]:
        out = coord_map.pool_size(size, kernel, stride, pad)
        if concrete(out) and out < 1:
            raise ValueError(
                f"max_pool({kernel}x{kernel}, stride {stride}) got a {x.shape[1]}x{x.shape[2]} "
                "map and would produce nothing: the input is too small for this network")
        pads.append((pad, (out - 1) * stride + kernel - size - pad))
    if kernel == stride and pad == 0:
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
        b, h, w, c = x.shape
        return x.reshape(b, h // kernel, kernel, w // kernel, kernel, c).max(axis=(2, 4))
    return nn.max_pool(x, (kernel, kernel), (stride, stride), padding=pads)


def split_padding(kernel: int, pad: int) -> tuple[int, int]:
    """(outer, inner): a convolution's ``pad`` as ``outer`` explicit zero padding of its input
    and the ``inner`` = min(pad, (kernel - 1) // 2) the convolution keeps.

    The FCNs' first convolution pads its input by 100 (114 for GoogLeNet) so that any image
    size survives the downsampling. XLA rewrites the weight gradient of a convolution padded
    far beyond its kernel as a forward convolution whose 500x500 window is the image: one
    cuDNN call of 52 ms, 69% of an FCN-8s train step (8x500x500 bf16, H200;
    BENCHMARKS.md). Padded apart, the convolution is an ordinary 3x3 one of the padded map.
    """
    inner = min(pad, (kernel - 1) // 2)
    return pad - inner, inner


def pad_input(x: jax.Array, pad: int) -> jax.Array:
    """``x`` (B, H, W, C) with ``pad`` zeros on each side, kept apart from the convolution
    that reads it (an optimization barrier: XLA would fold the padding back into the
    convolution's own, see :func:`split_padding`)."""
    if pad == 0:
        return x
    return jax.lax.optimization_barrier(jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))))


def local_response_norm(x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> jax.Array:
    """Caffe's ACROSS_CHANNELS LRN: x / (k + alpha / size * sum of x^2 over `size` channels)^beta."""
    squares = jnp.square(x.astype(jnp.float32))
    window = jax.lax.reduce_window(
        squares, 0.0, jax.lax.add, (1, 1, 1, size), (1, 1, 1, 1),
        ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
    return (x / jnp.power(k + (alpha / size) * window, beta)).astype(x.dtype)


def bilinear_filter(size: int) -> np.ndarray:
    """1-D bilinear interpolation filter of ``size`` taps (the FCN paper's ``upsample_filt``).

    With f = ceil(size / 2) and c = f - 1 (odd size) or f - 0.5 (even size), tap x has
    weight 1 - |x - c| / f; the 2-D kernel is the outer product with itself.
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1 - np.abs(np.arange(size) - center) / factor


def bilinear_kernel(size: int, channels: int) -> np.ndarray:
    """HWIO transposed-conv kernel: the bilinear filter for each channel, zero across channels."""
    f = bilinear_filter(size)
    kernel = np.zeros((size, size, channels, channels), np.float32)
    kernel[:, :, np.arange(channels), np.arange(channels)] = np.outer(f, f)[:, :, None]
    return kernel


def upsampling_matrix(size: int, kernel: int, stride: int, start: int, length: int
                      ) -> np.ndarray | jax.Array:
    """Rows ``start:start+length`` of the 1-D bilinear transposed conv as a float32
    (length, size) matrix.

    Output position m of a transposed conv receives input i through tap m - i * stride, so
    ``matrix @ signal`` equals the deconvolution of ``signal`` followed by the crop. A NumPy
    constant (cached) for concrete sizes; for symbolic ones (jax.export) the same matrix
    built in the traced program from iotas.
    """
    if concrete(size, length):
        return constant_upsampling_matrix(size, kernel, stride, start, length)
    return bilinear_rows(jnp, size, kernel, stride, start, length)


@functools.lru_cache(maxsize=256)
def constant_upsampling_matrix(size: int, kernel: int, stride: int, start: int,
                               length: int) -> np.ndarray:
    """:func:`upsampling_matrix` of concrete sizes, as a NumPy array."""
    return bilinear_rows(np, size, kernel, stride, start, length)


def bilinear_rows(xp: Any, size: Any, kernel: int, stride: int, start: int,
                  length: Any) -> Any:
    """The matrix of :func:`upsampling_matrix` with the array module ``xp`` (np or jnp)."""
    taps = xp.asarray(bilinear_filter(kernel), xp.float32)
    rows = xp.arange(length)[:, None] + start - stride * xp.arange(size)[None, :]
    valid = (rows >= 0) & (rows < kernel)
    return xp.where(valid, taps[xp.clip(rows, 0, kernel - 1)], xp.float32(0))


def crop(x: jax.Array, offset: int | tuple[int, int], size: tuple[int, int]) -> jax.Array:
    """x[:, top:top + h, left:left + w]: the one crop that aligns maps (and labels to logits).

    offset: cells dropped at the top and left; one int for both axes (the FCN crops).
    """
    (top, left), (h, w) = (offset, offset) if isinstance(offset, int) else offset, size
    if concrete(top, left, h, w, *x.shape[1:3]) and (
            top < 0 or left < 0 or x.shape[1] < top + h or x.shape[2] < left + w):
        raise ValueError(f"cannot crop {h}x{w} at offset {offset} from a "
                         f"{x.shape[1]}x{x.shape[2]} map")
    return x[:, top:top + h, left:left + w]


def depth_to_space_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A transposed conv whose kernel equals its stride (U-Net's 2x2 stride-2 up-conv):
    (B, h, w, C) -> (B, k*h, k*w, C_out) for a (k, k, C, C_out) kernel.

    Output windows do not overlap, so output cell (k*i + a, k*j + b) is input cell (i, j)
    times tap [a, b]: one matrix product to k*k*C_out channels, then depth-to-space. The
    dilated-input convolution XLA gives the general form has a weight gradient that took
    0.2 s of a 1.3 s U-Net train step on one CPU core (252x252, fp32); this form's gradients
    are two matrix products (BENCHMARKS.md). Same sums, other order: ~1e-6 apart.
    """
    k, (b, h, w, c), features = kernel.shape[0], x.shape, kernel.shape[-1]
    taps = kernel.transpose(2, 0, 1, 3).reshape(c, k * k * features)  # (C, (a, b, o))
    y = jnp.einsum("nhwc,cq->nhwq", x, taps).reshape(b, h, w, k, k, features)
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * k, w * k, features)


def transposed_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Caffe/PyTorch deconvolution without padding: output (H-1)*s + k.

    kernel: (k, k, C_in, C_out), tap [t_h, t_w] adds ``x[i] * kernel[t]`` to output
    ``i * stride + t`` (PyTorch's ``ConvTranspose2d`` weight [C_in, C_out, t_h, t_w]).
    """
    k = kernel.shape[0]
    if k == stride:
        return depth_to_space_conv(x, kernel)
    return jax.lax.conv_general_dilated(
        x, kernel[::-1, ::-1], window_strides=(1, 1), padding=((k - 1, k - 1), (k - 1, k - 1)),
        lhs_dilation=(stride, stride), dimension_numbers=("NHWC", "HWIO", "NHWC"))


class Upscore(nn.Module):
    """Bias-free transposed convolution initialised to the bilinear kernel, with its crop.

    Fixed (the FCN reference: ``lr_mult=0``) it has no parameters and is computed as two
    small matrix products, one per axis, restricted to the rows the crop keeps: the same
    numbers as the per-class deconvolution, without its zero cross-class taps. Learnable,
    it is a dense ``(k, k, C, C)`` transposed conv that starts bilinear.

    Attributes:
      kernel: filter size (4 for x2, 64 for x32, 63 for FCN-AlexNet's x32).
      stride: upsampling factor.
      learnable: keep the kernel as a trainable parameter.
    """

    kernel: int
    stride: int
    learnable: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, offset: int = 0,
                 size: tuple[int, int] | None = None) -> jax.Array:
        """x: (B, h, w, C) -> (B, H, W, C), the deconvolution cropped at ``offset`` to ``size``."""
        full = [coord_map.deconv_size(n, self.kernel, self.stride) for n in x.shape[1:3]]
        size = tuple(size) if size is not None else (full[0] - offset, full[1] - offset)
        if self.learnable:
            weight = self.param(
                "kernel", lambda *_: jnp.asarray(bilinear_kernel(self.kernel, x.shape[-1])))
            return crop(transposed_conv(x, weight.astype(self.dtype), self.stride), offset, size)
        if concrete(*full, *size) and (offset + size[0] > full[0] or offset + size[1] > full[1]):
            raise ValueError(
                f"cannot crop {size[0]}x{size[1]} at offset {offset} from a "
                f"{full[0]}x{full[1]} upsampled map")
        rows, cols = (jnp.asarray(upsampling_matrix(n, self.kernel, self.stride, offset, m),
                                  self.dtype) for n, m in zip(x.shape[1:3], size))
        y = jnp.einsum("Hh,bhwc->bHwc", rows, x)
        return jnp.einsum("Ww,bHwc->bHWc", cols, y)


def count_params(params) -> int:
    """Number of scalars in a parameter pytree (works on ``jax.eval_shape`` output too)."""
    return sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))


def randomize(params, seed: int, bias_std: float = 0.01):
    """Every leaf drawn at random: kernels N(0, 2 / fan_in), biases N(0, bias_std^2).

    params: a parameter pytree or its shapes (``jax.eval_shape`` of ``init``); fan_in is
    the product of all axes but the last (HWIO). For tests and benchmarks, which must never
    run on the zero-initialised score layers. Drawn with a seeded NumPy generator:
    ``jax.random`` would compile one program per leaf shape (about 30 s for GoogLeNet on CPU).
    """
    rng = np.random.default_rng(seed)

    def draw(leaf):
        std = math.sqrt(2 / math.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else bias_std
        return jnp.asarray(rng.standard_normal(leaf.shape, np.float32) * np.float32(std))

    return jax.tree_util.tree_map(draw, params)

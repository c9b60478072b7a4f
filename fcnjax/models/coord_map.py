"""Layer geometry: where every feature-map cell sits in the input image.

This is the pure-Python counterpart of Caffe's ``coord_map``: a feature map is described
by a :class:`Geometry`, i.e. cell ``j`` of the map is centred on input pixel
``offset + scale * j`` and sees a ``field``-pixel window of the input. Each layer maps one
geometry to the next, so the crop offsets that align skip layers and the final output
with the image are *derived* from the layers, never written down as literals. Nothing
here imports JAX: offsets are known before tracing and can be tested on their own.

Sizes follow Caffe too: convolutions round down, max pools round up (``ceil_mode``).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Position of a feature map's cells in input-pixel coordinates.

    Attributes:
      scale: input pixels between neighbouring cells (the accumulated stride).
      offset: input coordinate of the centre of cell 0 (may be negative or a half pixel).
      field: receptive field size in input pixels.
    """

    scale: Fraction = Fraction(1)
    offset: Fraction = Fraction(0)
    field: int = 1

    def conv(self, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> "Geometry":
        """Geometry after a convolution or pooling window (``kernel``, ``stride``, ``pad``)."""
        span = dilation * (kernel - 1)
        return Geometry(
            scale=self.scale * stride,
            offset=self.offset + self.scale * (Fraction(span, 2) - pad),
            field=self.field + int(span * self.scale),
        )

    pool = conv

    def deconv(self, kernel: int, stride: int, pad: int = 0) -> "Geometry":
        """Geometry after a transposed convolution (Caffe's ``Deconvolution``).

        Input cell ``i`` spreads over output cells ``i * stride - pad + t`` for
        ``t < kernel``, centred on ``t = (kernel - 1) / 2``; each output cell sees
        ``ceil(kernel / stride)`` input cells.
        """
        return Geometry(
            scale=self.scale / stride,
            offset=self.offset + self.scale * (pad - Fraction(kernel - 1, 2)) / stride,
            field=self.field + int((math.ceil(kernel / stride) - 1) * self.scale),
        )

    def cropped_to(self, reference: "Geometry") -> "Geometry":
        """This map after :func:`crop_offset` aligned it to ``reference``."""
        crop_offset(self, reference)
        return Geometry(self.scale, reference.offset, self.field)


IMAGE = Geometry()
"""The input image itself: cell j is pixel j."""


def crop_offset(source: Geometry, reference: Geometry) -> int:
    """Cells to drop from the start of ``source`` so that it lines up with ``reference``.

    This is the offset of Caffe's ``Crop`` layer as ``coord_map`` derives it. Raises
    ``ValueError`` when the two maps have different scales or the alignment is not a
    whole, non-negative number of cells (the net's paddings or kernels do not fit).
    """
    if source.scale != reference.scale:
        raise ValueError(
            f"cannot crop a map of stride {source.scale} to one of stride {reference.scale}: "
            "upsample it first")
    cells = (reference.offset - source.offset) / source.scale
    if cells.denominator != 1 or cells < 0:
        raise ValueError(
            f"crop offset {float(cells)} is not a non-negative integer (source offset "
            f"{float(source.offset)}, reference offset {float(reference.offset)}, stride "
            f"{source.scale}): change the input padding or the upsampling kernel size")
    return int(cells)


def upsampling_kernel(source: Geometry, stride: int, reference: Geometry) -> int:
    """Kernel size of a bilinear upsampling by ``stride`` that lands on ``reference``'s grid.

    A bilinear kernel for factor ``f`` is ``2f`` wide, or ``2f - 1`` when only the odd
    size puts the upsampled cells on whole cells of ``reference`` (FCN-AlexNet's 63x63
    ``upscore``): the choice follows from the geometry, not from a table.
    """
    for kernel in (2 * stride, 2 * stride - 1):
        up = source.deconv(kernel, stride)
        if up.scale == reference.scale and ((up.offset - reference.offset) / up.scale
                                            ).denominator == 1:
            return kernel
    raise ValueError(
        f"no bilinear kernel of size {2 * stride} or {2 * stride - 1} aligns a map with offset "
        f"{float(source.offset)} and stride {source.scale} to one with offset "
        f"{float(reference.offset)} and stride {reference.scale}")


def conv_size(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution, rounding down (Caffe, PyTorch and XLA agree)."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def pool_size(size: int, kernel: int, stride: int, pad: int = 0) -> int:
    """Output length of a Caffe max pool, which rounds *up* so no input row is lost.

    As in Caffe, a last window that would start in the bottom padding is dropped.
    """
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def deconv_size(size: int, kernel: int, stride: int, pad: int = 0) -> int:
    """Output length of a transposed convolution."""
    return (size - 1) * stride + kernel - 2 * pad

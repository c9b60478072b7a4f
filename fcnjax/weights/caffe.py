"""Caffe ``.caffemodel`` files, read without Caffe, and their weights as fcnjax params.

A caffemodel is one protobuf message, ``NetParameter``: a list of layers (current files:
``LayerParameter`` under field 100; files from before 2015: ``V1LayerParameter`` under field
2), each with its weight blobs (``BlobProto``: a shape and the values, row-major float32).
:mod:`fcnjax.weights.caffe_pb2` (generated from ``caffe.proto`` beside this file) parses the
names, types and shapes. The values, nearly all of a file's bytes, are not copied into
protobuf objects: the file is memory-mapped, the records are walked with the protobuf wire
format's two rules (a varint key, then a varint, a fixed 4 / 8 bytes or a length-prefixed
payload), and each packed ``data`` payload becomes an ``np.frombuffer`` view of the mapped
file. Converting a blob to fcnjax's layout is then its one copy, made blob by blob: a 540 MB
VGG16 FCN never holds two copies of its arrays. Nothing in the file is executed.

Layouts. Caffe keeps convolution kernels OIHW (grouped ones as (O, I / groups, H, W), which
is also what a grouped HWIO kernel holds), deconvolution kernels (I, O, H, W) and inner
products (out, C*H*W): exactly PyTorch's, so :mod:`fcnjax.weights.surgery`'s layouts apply. Files
without ``BlobShape`` give four legacy dimensions (a bias as (1, 1, 1, N), an inner product as
(1, 1, out, in)); leading 1s are ignored when shapes are compared.

Typical use::

    net = caffe.read_net("fcn8s-heavy-pascal.caffemodel")
    params = caffe.from_caffe_fcn(net, models.fcn8s())
    trunk = caffe.from_caffe_vgg16("VGG_ILSVRC_16_layers.caffemodel")
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from flax import traverse_util

from fcnjax.models import FCN, LateFusionFCN, MultiTaskFCN, plan_head
from fcnjax.models.trunk import ConvLayer, Trunk
from fcnjax.models.vgg import vgg16
from fcnjax.weights import caffe_pb2, surgery
from fcnjax.weights.layouts import (CONV, DECONV, LINEAR, SAME, Layout, WeightFileError,
                                    check_bilinear, mismatch_report, param_shapes)

Shape = tuple[int, ...]
Path = tuple[str, ...]

NET_LAYER, NET_V1_LAYERS = 100, 2
"""NetParameter's layer fields: current files, and files of the V1 format."""
LAYER_BLOBS, V1_LAYER_BLOBS = 7, 6
"""The ``blobs`` field of LayerParameter and of V1LayerParameter."""
BLOB_DATA, BLOB_DOUBLE_DATA = 5, 8
"""BlobProto's packed value fields (float32, float64)."""

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
"""The protobuf wire types a caffemodel uses (groups, types 3 and 4, it never does)."""


class CaffeModelMismatch(WeightFileError):
    """A caffemodel whose layers do not fit the model it is loaded into."""


@dataclasses.dataclass
class CaffeLayer:
    """One layer of a caffemodel: its name, type (``"Convolution"``...) and weight blobs.

    blobs: float32 arrays in Caffe's shapes; views of the mapped file until converted.
    """

    name: str
    type: str
    bottom: tuple[str, ...]
    top: tuple[str, ...]
    blobs: list[np.ndarray]


@dataclasses.dataclass
class CaffeNet:
    """A parsed caffemodel: its layers in file order (those without weights included)."""

    name: str
    layers: list[CaffeLayer]
    source: str
    legacy: bool = False  # V1LayerParameter layers

    def weighted(self) -> dict[str, CaffeLayer]:
        """The layers that hold blobs, by name."""
        return {layer.name: layer for layer in self.layers if layer.blobs}

    def shapes(self) -> dict[str, list[Shape]]:
        """``{layer: [blob shapes]}`` of the layers with weights."""
        return {name: [tuple(b.shape) for b in layer.blobs]
                for name, layer in self.weighted().items()}


# ----------------------------------------------------------------------------- reading


class _WireError(Exception):
    def __init__(self, truncated: bool, where: int, what: str):
        super().__init__(what)
        self.truncated, self.where, self.what = truncated, where, what


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end:
            raise _WireError(True, pos, "a number runs past the end")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _WireError(False, pos, "a number longer than 10 bytes")


def _fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, record start, payload start, payload end) of each field."""
    pos = start
    while pos < end:
        record = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError(False, record, "field number 0")
        if wire == VARINT:
            _, after = _varint(buf, pos, end)
        elif wire == LENGTH:
            size, pos = _varint(buf, pos, end)
            after = pos + size
        elif wire in (FIXED32, FIXED64):
            after = pos + (4 if wire == FIXED32 else 8)
        else:
            raise _WireError(False, record, f"wire type {wire}")
        if after > end:
            raise _WireError(True, record, "a record runs past the end of its message")
        yield number, wire, record, pos, after
        pos = after


def _parse(message_type: Any, pieces: list[bytes], where: int) -> Any:
    try:
        return message_type.FromString(b"".join(pieces))
    except Exception as error:  # google.protobuf.message.DecodeError, not worth importing
        raise _WireError(False, where, f"undecodable {message_type.DESCRIPTOR.name}: "
                         f"{error}") from error


def _blob(buf: Any, start: int, end: int) -> np.ndarray:
    """A BlobProto record as a float32 array: a view of ``buf`` when its values are packed
    float32 (every file Caffe writes), a copy otherwise (float64 or unpacked values)."""
    rest, pieces = [], []
    for number, wire, record, begin, after in _fields(buf, start, end):
        if number in (BLOB_DATA, BLOB_DOUBLE_DATA) and wire == LENGTH:
            dtype = np.dtype("<f4" if number == BLOB_DATA else "<f8")
            if (after - begin) % dtype.itemsize:
                raise _WireError(False, record, "packed values of a partial size")
            pieces.append(np.frombuffer(buf, dtype, (after - begin) // dtype.itemsize, begin))
        else:  # shape, legacy dims, unpacked values: small, or rare enough to parse
            rest.append(bytes(buf[record:after]))
    blob = _parse(caffe_pb2.BlobProto, rest, start)
    if blob.data:
        pieces.append(np.asarray(blob.data, np.float32))
    if blob.double_data:
        pieces.append(np.asarray(blob.double_data, np.float64))
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = tuple(int(d) for d in (blob.num, blob.channels, blob.height, blob.width))
    pieces = [p for p in pieces if p.size] or [np.zeros(0, np.float32)]
    array = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    if array.size != int(np.prod(shape)):
        raise _WireError(False, start, f"a blob of shape {shape} holds {array.size} values")
    return array.reshape(shape) if array.dtype == np.dtype("<f4") else (
        array.astype(np.float32).reshape(shape))


def _layer(buf: Any, start: int, end: int, legacy: bool) -> CaffeLayer:
    blobs_field = V1_LAYER_BLOBS if legacy else LAYER_BLOBS
    rest, blobs = [], []
    for number, wire, record, begin, after in _fields(buf, start, end):
        if number == blobs_field and wire == LENGTH:
            blobs.append(_blob(buf, begin, after))
        else:
            rest.append(bytes(buf[record:after]))
    message = _parse(caffe_pb2.V1LayerParameter if legacy else caffe_pb2.LayerParameter,
                     rest, start)
    if legacy:
        kind = caffe_pb2.V1LayerParameter.LayerType.Name(message.type)
        kind = {"CONVOLUTION": "Convolution", "DECONVOLUTION": "Deconvolution",
                "INNER_PRODUCT": "InnerProduct"}.get(kind, kind)
    else:
        kind = message.type
    return CaffeLayer(message.name, kind, tuple(message.bottom), tuple(message.top), blobs)


def read_net(path: str | os.PathLike) -> CaffeNet:
    """Parse a ``.caffemodel`` file (binary NetParameter, current or V1 layers).

    Raises ``FileNotFoundError`` for a missing file and :class:`~fcnjax.weights.layouts.WeightFileError`,
    in one line naming the file, for an empty, truncated or non-protobuf one, or one with
    no weights.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no caffemodel at {path!r}")
    size = os.path.getsize(path)
    if size == 0:
        raise WeightFileError(f"{path} is empty: not a caffemodel")
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        rest, layers_ = [], []
        legacy = False
        for number, wire, record, begin, after in _fields(buf, 0, size):
            if number in (NET_LAYER, NET_V1_LAYERS) and wire == LENGTH:
                legacy |= number == NET_V1_LAYERS
                layers_.append(_layer(buf, begin, after, number == NET_V1_LAYERS))
            else:
                rest.append(bytes(buf[record:after]))
        net = _parse(caffe_pb2.NetParameter, rest, 0)
    except _WireError as error:
        if error.truncated:
            raise WeightFileError(f"{path} is truncated: {error.what} at byte {error.where} of "
                            f"{size} (an interrupted download? fetch the file again)") from None
        hint = (" (a text .prototxt? that is the net's definition, not its weights)"
                if buf[:1].isalpha() else "")
        raise WeightFileError(f"{path} is not a Caffe model: not a binary protobuf NetParameter "
                        f"({error.what} at byte {error.where}){hint}") from None
    if not any(layer.blobs for layer in layers_):
        raise WeightFileError(f"{path} holds no layer with weights ({len(layers_)} layers): "
                        "not a trained caffemodel")
    return CaffeNet(net.name, layers_, path, legacy)


Source = CaffeNet | str | os.PathLike


def _resolve(source: Source) -> CaffeNet:
    return source if isinstance(source, CaffeNet) else read_net(source)


# ----------------------------------------------------------------------------- mapping


@dataclasses.dataclass(frozen=True)
class Blob:
    """Where one Caffe blob goes: our parameter path and the layout between the two.

    path None: a fixed bilinear upsampling kernel of ``channels`` (checked, not loaded).
    """

    path: Path | None
    layout: Layout
    kernel: int = 0
    channels: int = 0


def trunk_layers(model: Any) -> list[str]:
    """Names of the backbone's learned layers, input to output."""
    names = []
    for layer in model.backbone.layers:
        if isinstance(layer, ConvLayer):
            names.append(layer.name)
        if layer.name == model.backbone.output:
            break
    return names


def _plan(model: Any) -> Any:
    return plan_head(model.backbone, model.skips)


def _conv(path: Path) -> list[Blob]:
    return [Blob((*path, "kernel"), CONV), Blob((*path, "bias"), SAME)]


def _head(plan: Any, classes: int, suffix: str, learnable: bool,
          score_streams: Mapping[str, str] | None = None) -> dict[str, list[Blob]]:
    """Score and upscore layers of one head; ``score_streams``: {our stream: Caffe suffix}."""
    keys = {}
    for layer in ("fr", *(f.layer for f in plan.fusions)):
        ours = f"score_{layer}{suffix}"
        if score_streams:
            for stream, theirs in score_streams.items():
                keys[f"{ours}{theirs}"] = _conv((f"{ours}_{stream}",))
        else:
            keys[ours] = _conv((ours,))
    upscores = [(f.upscore, f.kernel) for f in plan.fusions] + [(plan.upscore, plan.kernel)]
    for name, kernel in upscores:
        name += suffix
        keys[name] = ([Blob((name, "kernel"), DECONV)] if learnable
                      else [Blob(None, DECONV, kernel, classes)])
    return keys


def caffe_keys(model: Any, *, renames: Mapping[str, str] | None = None,
               streams: Mapping[str, str] | None = None) -> dict[str, list[Blob]]:
    """Caffe layer name -> one :class:`Blob` per blob, for an fcnjax FCN.

    The names are the reference's: ``conv1_1`` ... ``fc7``, ``score_fr``, ``score_pool4``,
    ``upscore2`` ...; SIFT Flow's heads end in ``_sem`` / ``_geo``; NYUDv2 late fusion's
    streams append their modality to every name (``conv1_1color``, ``score_frhha``).

    renames: our layer name -> the file's (early fusion's ``conv1_1`` is ``conv1_1_bgrd``).
    streams: late fusion only, our stream -> the file's suffix (``{"image": "color"}``).
    """
    renames = dict(renames or {})
    learnable = bool(getattr(model, "learnable_upsampling", False))
    keys: dict[str, list[Blob]] = {}
    if isinstance(model, LateFusionFCN):
        suffixes = {s: (streams or {}).get(s, s) for s in model.streams}
        for stream, theirs in suffixes.items():
            for name in trunk_layers(model):
                keys[renames.get(name, name) + theirs] = _conv((stream, name))
        keys.update(_head(_plan(model), model.num_classes, "", learnable, suffixes))
    elif isinstance(model, (FCN, MultiTaskFCN)):
        for name in trunk_layers(model):
            keys[renames.get(name, name)] = _conv(("trunk", name))
        heads = (((f"_{task}", classes) for task, classes in model.tasks)
                 if isinstance(model, MultiTaskFCN) else (("", model.num_classes),))
        for suffix, classes in heads:
            keys.update(_head(_plan(model), classes, suffix, learnable))
    else:
        raise TypeError(f"no Caffe layer names for a {type(model).__name__}")
    return keys


def _squeeze(shape: Shape) -> Shape:
    """Legacy blobs pad shapes to four dimensions with leading 1s."""
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _want(keys: Mapping[str, list[Blob]], expected: Mapping[Path, Any]) -> dict[str, list[Shape]]:
    want = {}
    for name, blobs in keys.items():
        want[name] = [blob.layout.file_shape(tuple(expected[blob.path].shape))
                      if blob.path is not None
                      else (blob.channels, blob.channels, blob.kernel, blob.kernel)
                      for blob in blobs]
    return want


def _describe(shapes: Sequence[Shape]) -> str:
    return " + ".join("x".join(map(str, s)) for s in shapes) or "no blobs"


def check_net(net: CaffeNet, want: Mapping[str, list[Shape]], what: str,
              ignored: Sequence[str] = ()) -> None:
    """Raise :class:`CaffeModelMismatch` naming the missing, extra and misshapen layers."""
    found = {k: v for k, v in net.shapes().items() if k not in ignored}
    report = mismatch_report(
        want, found, what="layers", describe=_describe,
        same=lambda f, w: len(f) == len(w) and all(_squeeze(a) == _squeeze(b)
                                                   for a, b in zip(f, w)))
    if report:
        raise CaffeModelMismatch(f"{net.source} is not a {what} caffemodel: {report}")


def _fixed_kernels(net: CaffeNet, keys: Mapping[str, list[Blob]]) -> dict[str, np.ndarray]:
    """The fixed upsampling blobs (``Blob.path`` None) of ``net``, in our layout."""
    kernels, layers_ = {}, net.weighted()
    for name, blobs in keys.items():
        for blob, array in zip(blobs, layers_[name].blobs):
            if blob.path is None:
                kernels[name] = DECONV.to_ours(array.reshape(blob.channels, blob.channels,
                                                             blob.kernel, blob.kernel), ())
    return kernels


def convert(net: CaffeNet, keys: Mapping[str, list[Blob]], expected_tree: Any, what: str, *,
            ignored: Sequence[str] = ()) -> dict:
    """Check ``net`` against ``keys``, then copy each blob into our layout, one at a time.

    Fixed upsampling layers (``Blob.path`` None) must hold the bilinear kernel, as the
    reference's do (its ``surgery.interp``); they are checked and not loaded.
    Returns a numpy tree of the shapes and dtypes of ``expected_tree``.
    """
    expected = traverse_util.flatten_dict(expected_tree)
    check_net(net, _want(keys, expected), what, ignored)
    check_bilinear(_fixed_kernels(net, keys), net.source, CaffeModelMismatch)
    flat = {}
    layers_ = net.weighted()
    for name, blobs in keys.items():  # one blob at a time: its copy is the only one made
        arrays = layers_[name].blobs
        for i, blob in enumerate(blobs):
            if blob.path is None:
                continue
            shape = tuple(expected[blob.path].shape)
            view = arrays[i].reshape(blob.layout.file_shape(shape))
            array = np.ascontiguousarray(blob.layout.to_ours(view, shape),
                                         expected[blob.path].dtype)
            # An array of its own, never a view that keeps the mapped file open.
            flat[blob.path] = array.copy() if np.may_share_memory(array, view) else array
    converted = traverse_util.unflatten_dict(flat)
    surgery.check_matches(expected_tree, converted, f"params converted from {net.source}")
    return converted


def model_inputs(model: Any, in_channels: int = 3) -> Any:
    """Input channels ``param_shapes`` needs: one int, or one per late-fusion stream."""
    if isinstance(model, LateFusionFCN):
        return {stream: 3 for stream in model.streams}
    return in_channels


def from_caffe_fcn(source: Source, model: Any, *, in_channels: int = 3,
                   renames: Mapping[str, str] | None = None,
                   streams: Mapping[str, str] | None = None, what: str | None = None) -> dict:
    """A reference FCN caffemodel (path or :class:`CaffeNet`) -> ``model``'s params.

    model: the matching fcnjax FCN, ``FCN``, ``MultiTaskFCN`` or ``LateFusionFCN``.
    in_channels: of the image (4 for NYUDv2 early fusion). renames / streams: see
    :func:`caffe_keys`. Layers without weights (ReLU, pooling, crops, losses) are ignored;
    every layer with weights must be one of the model's, of its shape.
    """
    net = _resolve(source)
    keys = caffe_keys(model, renames=renames, streams=streams)
    expected = param_shapes(model, model_inputs(model, in_channels))
    return convert(net, keys, expected, what or type(model).__name__)


VGG16_IGNORED = ("fc8",)
"""The 1000-way ImageNet classifier: FCNs replace it with ``score_fr``."""


def vgg16_keys() -> dict[str, list[Blob]]:
    """ImageNet VGG16 (VGG_ILSVRC_16_layers): conv layers, and fc6 / fc7 inner products."""
    keys = {}
    for layer in vgg16().layers:
        if isinstance(layer, ConvLayer):
            layout = LINEAR if layer.fully_connected else CONV
            keys[layer.name] = [Blob((layer.name, "kernel"), layout),
                                Blob((layer.name, "bias"), SAME)]
    return keys


def from_caffe_vgg16(source: Source) -> dict:
    """``VGG_ILSVRC_16_layers.caffemodel`` -> VGG16 trunk params (the tree under "trunk").

    fc6's (4096, 512*7*7) inner product (C, H, W order) becomes a (7, 7, 512, 4096) kernel
    and fc7's a (1, 1, 4096, 4096) one, as the reference's net surgery casts them; fc8 is
    dropped. A file whose fc6 / fc7 are already convolutions (4096x512x7x7) is accepted too.
    """
    net = _resolve(source)
    keys = vgg16_keys()
    shapes = net.shapes()
    for name in ("fc6", "fc7"):
        if name in shapes and len(shapes[name][0]) == 4 and shapes[name][0][0] != 1:
            keys[name] = [dataclasses.replace(keys[name][0], layout=CONV),
                          keys[name][1]]
    expected = param_shapes(Trunk(vgg16()), 3)
    return convert(net, keys, expected, "ImageNet VGG16", ignored=VGG16_IGNORED)

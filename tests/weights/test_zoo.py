"""fcnjax.weights: caffemodels parse without Caffe, every published net converts, bad files
are refused in one line, and ``python -m fcnjax.zoo`` lists and converts.

The files are synthetic, written with the generated ``caffe_pb2`` classes in the reference's
layer names and Caffe's layouts, for thin variants of the nets (1/64 of VGG16's channels,
1/16 of AlexNet's) so that every row of the table is tested in seconds.
"""

import dataclasses
import os

import jax
import numpy as np
import pytest
from flax import traverse_util

from fcnjax import models
from fcnjax import zoo as zoo_cli
from fcnjax.models.alexnet import alexnet as full_alexnet
from fcnjax.models.layers import bilinear_kernel
from fcnjax.models.trunk import ConvLayer
from fcnjax.models.vgg import vgg16
from fcnjax.run import checkpoint
from fcnjax.run import state as run_state
from fcnjax.run.errors import DataError
from fcnjax.weights import caffe, caffe_pb2, layouts, sources, surgery, zoo


def thin(backbone, divisor, least):
    layers = tuple(dataclasses.replace(layer, features=max(layer.features // divisor, least))
                   if isinstance(layer, ConvLayer) else layer for layer in backbone.layers)
    return dataclasses.replace(backbone, layers=layers)


def thin_vgg16(input_pad=100):
    return thin(vgg16(input_pad), 64, 2)


def thin_alexnet(input_pad=100):
    return thin(full_alexnet(input_pad), 16, 2)


@pytest.fixture(autouse=True)
def thin_nets(monkeypatch):
    monkeypatch.setattr(models, "vgg16", thin_vgg16)
    monkeypatch.setattr(models, "alexnet", thin_alexnet)
    monkeypatch.setattr(caffe, "vgg16", thin_vgg16)


def bilinear_iohw(kernel, channels):
    return bilinear_kernel(kernel, channels).transpose(2, 3, 0, 1)


def synthetic_layers(keys, expected, seed=0):
    """{Caffe layer: (type, [blobs in Caffe's layout])} for ``caffe.caffe_keys`` output."""
    rng = np.random.default_rng(seed)
    layers = {}
    for name, blobs in keys.items():
        arrays = []
        for blob in blobs:
            if blob.path is None:
                arrays.append(bilinear_iohw(blob.kernel, blob.channels))
            else:
                shape = blob.layout.file_shape(tuple(expected[blob.path].shape))
                arrays.append(rng.standard_normal(shape).astype(np.float32))
        kind = "Deconvolution" if name.startswith("upscore") else (
            "InnerProduct" if blobs[0].layout is layouts.LINEAR else "Convolution")
        layers[name] = (kind, arrays)
    return layers


def write_net(path, layers, legacy=False, name="net"):
    """A caffemodel of ``layers`` ({name: (type, [arrays])}), with weightless layers between;
    ``legacy``: V1 layers and four legacy dimensions per blob, as 2014 files have."""
    net = caffe_pb2.NetParameter(name=name)
    v1 = caffe_pb2.V1LayerParameter.LayerType
    for i, (layer_name, (kind, arrays)) in enumerate(layers.items()):
        if legacy:
            layer = net.layers.add(name=layer_name, type=v1.Value(
                {"Convolution": "CONVOLUTION", "InnerProduct": "INNER_PRODUCT",
                 "Deconvolution": "DECONVOLUTION"}[kind]))
            net.layers.add(name=f"relu{i}", type=v1.RELU)
        else:
            layer = net.layer.add(name=layer_name, type=kind, bottom=[f"x{i}"], top=[f"x{i + 1}"])
            net.layer.add(name=f"relu{i}", type="ReLU", bottom=[f"x{i + 1}"], top=[f"x{i + 1}"])
        for array in arrays:
            blob = layer.blobs.add()
            if legacy:
                dims = (1,) * (4 - array.ndim) + array.shape
                blob.num, blob.channels, blob.height, blob.width = dims
            else:
                blob.shape.dim.extend(array.shape)
            blob.data.extend(array.ravel().tolist())
    with open(path, "wb") as f:
        f.write(net.SerializeToString())
    return path


def model_file(tmp_path, row, seed=0, filename=None):
    """A synthetic caffemodel for a row of the table, and its layers."""
    model = row.build()
    if row.trunk_only:
        keys = caffe.vgg16_keys()
        expected = traverse_util.flatten_dict(caffe.param_shapes(
            models.Trunk(thin_vgg16()), 3))
    else:
        keys = caffe.caffe_keys(model, renames=row.renames, streams=row.streams)
        expected = traverse_util.flatten_dict(caffe.param_shapes(
            model, caffe.model_inputs(model, row.in_channels)))
    layers = synthetic_layers(keys, expected, seed)
    if row.trunk_only:
        layers["fc8"] = ("InnerProduct", [np.ones((10, 64), np.float32),
                                          np.zeros(10, np.float32)])
    return write_net(tmp_path / (filename or f"{row.name}.caffemodel"), layers), keys, layers


def check_landed(params, keys, layers, prefix=()):
    """Every converted array is the file's, in fcnjax's layout (HWIO for kernels)."""
    flat = traverse_util.flatten_dict(params)
    loaded = 0
    for name, blobs in keys.items():
        for blob, array in zip(blobs, layers[name][1]):
            if blob.path is None:
                continue
            ours = flat[(*prefix, *blob.path)]
            if blob.layout is layouts.CONV:
                np.testing.assert_array_equal(ours, array.transpose(2, 3, 1, 0))
            elif blob.layout is layouts.LINEAR:
                k = ours.shape[0]
                np.testing.assert_array_equal(
                    ours, array.reshape(-1, ours.shape[2], k, k).transpose(2, 3, 1, 0))
            else:
                np.testing.assert_array_equal(ours, array)
            loaded += 1
    assert loaded == len(flat)


@pytest.mark.parametrize("name", list(zoo.ENTRIES))
def test_every_published_net_converts_with_its_values_in_place(name, tmp_path):
    row = zoo.entry(name)
    path, keys, layers = model_file(tmp_path, row)
    params = zoo.load(path, name)
    check_landed(params, keys, layers, ("trunk",) if row.trunk_only else ())
    if not row.trunk_only:
        surgery.check_matches(caffe.param_shapes(row.build(), caffe.model_inputs(
            row.build(), row.in_channels)), params)


def test_reference_names_of_the_multi_stream_and_multi_task_nets(tmp_path):
    late = caffe.caffe_keys(zoo.entry("nyud-fcn32s-color-hha").build(),
                            streams={"image": "color", "hha": "hha"})
    assert late["conv1_1color"][0].path == ("image", "conv1_1", "kernel")
    assert late["fc7hha"][1].path == ("hha", "fc7", "bias")
    assert late["score_frcolor"][0].path == ("score_fr_image", "kernel")
    assert set(late) >= {"score_frhha", "upscore"}
    sift8 = caffe.caffe_keys(zoo.entry("siftflow-fcn8s").build())
    assert {"score_pool3_sem", "upscore_pool4_geo", "upscore8_sem", "score_fr_geo"} <= set(sift8)
    assert "upscore16_sem" in caffe.caffe_keys(zoo.entry("siftflow-fcn16s").build())
    early = caffe.caffe_keys(zoo.entry("nyud-fcn32s-color-d").build(),
                             renames={"conv1_1": "conv1_1_bgrd"})
    assert early["conv1_1_bgrd"][0].path == ("trunk", "conv1_1", "kernel")


def test_kernel_elements_move_from_oihw_to_hwio(tmp_path):
    row = zoo.entry("voc-fcn-alexnet")
    path, _keys, layers = model_file(tmp_path, row)
    params = zoo.load(path, row.name)
    conv2 = layers["conv2"][1][0]  # grouped: (O, I / 2, 5, 5)
    o, i, h, w = 5, 1, 3, 2
    assert params["trunk"]["conv2"]["kernel"][h, w, i, o] == conv2[o, i, h, w]
    assert params["trunk"]["conv2"]["kernel"].shape == conv2.shape[2:] + conv2.shape[1::-1]


def test_imagenet_fc6_columns_are_read_in_c_h_w_order(tmp_path):
    row = zoo.entry("vgg16-ilsvrc")
    path, _, layers = model_file(tmp_path, row)
    trunk = zoo.load(path, row.name)["trunk"]
    fc6 = layers["fc6"][1][0]  # (out, C*7*7)
    kernel = trunk["fc6"]["kernel"]  # (7, 7, C, out)
    channels = kernel.shape[2]
    for o, c, h, w in ((0, 0, 0, 1), (3, channels - 1, 6, 2), (63, 1, 4, 6)):
        assert kernel[h, w, c, o] == fc6[o, c * 49 + h * 7 + w]


def test_the_legacy_v1_format_parses_to_the_same_params(tmp_path):
    row = zoo.entry("vgg16-ilsvrc")
    path, _keys, layers = model_file(tmp_path, row)
    legacy = write_net(tmp_path / "v1.caffemodel", layers, legacy=True)
    net = caffe.read_net(legacy)
    assert net.legacy and net.weighted()["fc6"].type == "InnerProduct"
    assert net.shapes()["conv1_1"][1] == (1, 1, 1, 2)  # a bias in four legacy dimensions
    new, old = zoo.load(path, row.name), zoo.load(legacy, row.name)
    for a, b in zip(traverse_util.flatten_dict(new).values(),
                    traverse_util.flatten_dict(old).values()):
        np.testing.assert_array_equal(a, b)


def test_blobs_are_views_of_the_file_and_params_are_copies(tmp_path):
    path, _, _ = model_file(tmp_path, zoo.entry("voc-fcn32s"))
    net = caffe.read_net(path)
    fc6 = net.weighted()["fc6"].blobs[0]
    assert not fc6.flags.owndata and fc6.dtype == np.float32
    params = caffe.from_caffe_fcn(net, zoo.entry("voc-fcn32s").build())
    for leaf in traverse_util.flatten_dict(params).values():
        assert leaf.flags.owndata or leaf.base is None or not np.may_share_memory(leaf, fc6)
        assert not np.may_share_memory(leaf, fc6)


def one_line(error):
    message = str(error.value)
    assert "\n" not in message
    return message


def test_truncated_and_foreign_files_are_refused_in_one_line(tmp_path):
    path, _, _ = model_file(tmp_path, zoo.entry("voc-fcn32s"))
    data = path.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as error:
        caffe.read_net(cut)
    assert str(cut) in one_line(error) and "truncated" in one_line(error)
    text = tmp_path / "deploy.prototxt"
    text.write_text('name: "FCN"\nlayer { name: "conv1_1" type: "Convolution" }\n')
    with pytest.raises(DataError) as error:
        caffe.read_net(text)
    assert str(text) in one_line(error) and "not a Caffe model" in one_line(error)
    assert "prototxt" in one_line(error)
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="not a Caffe model|truncated"):
        caffe.read_net(junk)
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        caffe.read_net(empty)
    with pytest.raises(FileNotFoundError):
        caffe.read_net(tmp_path / "absent.caffemodel")


def test_another_nets_file_names_missing_extra_and_misshapen_layers(tmp_path):
    path, _, _ = model_file(tmp_path, zoo.entry("voc-fcn32s"))
    with pytest.raises(caffe.CaffeModelMismatch) as error:
        zoo.load(path, "voc-fcn8s")
    message = one_line(error)
    assert "missing layers (5): score_pool4, score_pool3, upscore2, upscore_pool4, upscore8" in message
    assert "unexpected layers (1): upscore" in message
    with pytest.raises(caffe.CaffeModelMismatch) as error:
        zoo.load(path, "pascalcontext-fcn32s")
    message = one_line(error)
    assert "wrong shapes (2): score_fr: found 21x64x1x1 + 21, expected 60x64x1x1 + 60" in message
    assert "upscore: found 21x21x64x64, expected 60x60x64x64" in message


def test_fixed_upsampling_must_be_bilinear_unless_learnable(tmp_path):
    row = zoo.entry("voc-fcn32s")
    model = row.build()
    keys = caffe.caffe_keys(model)
    expected = traverse_util.flatten_dict(caffe.param_shapes(model, 3))
    layers = synthetic_layers(keys, expected)
    learned = layers["upscore"][1][0] + 0.5
    layers["upscore"] = ("Deconvolution", [learned])
    path = write_net(tmp_path / "learned.caffemodel", layers)
    with pytest.raises(caffe.CaffeModelMismatch, match="upscore .*bilinear"):
        zoo.load(path, row.name)
    params = zoo.load(path, row.name, models.fcn32s(learnable_upsampling=True))
    np.testing.assert_array_equal(params["upscore"]["kernel"], learned.transpose(2, 3, 0, 1))


def test_zoo_list_prints_every_row(capsys):
    zoo_cli.main(["list"])
    out = capsys.readouterr().out
    for row in zoo.TABLE:
        assert row.name in out and (row.url or "(not published)") in out
    assert len(out.strip().splitlines()) == len(zoo.TABLE) + 1


def test_zoo_convert_writes_a_checkpoint_that_reads_back(tmp_path, capsys):
    path, _, _ = model_file(tmp_path, zoo.entry("voc-fcn16s"))
    out = tmp_path / "run"
    zoo_cli.main(["convert", str(path), "--model", "voc-fcn16s", "--output", str(out)])
    assert "wrote" in capsys.readouterr().out
    assert (out / "checkpoints" / "0").is_dir() and (out / "config.json").is_file()
    restored = traverse_util.flatten_dict(checkpoint.restore_params(str(out)))
    expected = traverse_util.flatten_dict(zoo.load(path, "voc-fcn16s"))
    assert set(restored) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(np.asarray(restored[key]), value)
    config = zoo.load_config(os.path.join(zoo.configs_dir(), "fcn16s.py"))
    state = run_state.restore_state(config, str(out))  # what evaluate / predict do
    assert int(state.step) == 0
    np.testing.assert_array_equal(state.params["score_pool4"]["bias"],
                                  expected[("score_pool4", "bias")])


def test_zoo_convert_errors_are_one_line(tmp_path, capsys):
    cut = tmp_path / "cut.caffemodel"
    path, _, _ = model_file(tmp_path, zoo.entry("voc-fcn32s"))
    cut.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SystemExit) as stop:
        zoo_cli.main(["convert", str(cut), "--model", "voc-fcn32s", "--output", str(tmp_path / "o")])
    assert str(stop.value).startswith("fcnjax.zoo: error: ") and "truncated" in str(stop.value)
    with pytest.raises(SystemExit) as stop:
        zoo_cli.main(["convert", str(path), "--model", "voc-fcn99s", "--output", str(tmp_path / "o")])
    assert "unknown model 'voc-fcn99s'" in str(stop.value)


def test_config_init_caffe_vgg16_starts_an_fcn_from_the_imagenet_caffemodel(tmp_path):
    """config.init.caffe_vgg16: the trunk comes from the file, the score layers are new."""
    from configs import fcn32s

    path, _, layers = model_file(tmp_path, zoo.entry("vgg16-ilsvrc"))
    config = fcn32s.get_config()
    config.model.num_classes = 3
    config.init.caffe_vgg16 = str(path)
    model = models.build(config.model)
    params = sources.initial_params(config.init, model, jax.random.key(0, impl="rbg"),
                                    (1, 32, 32, 3))
    conv = layers["conv1_1"][1][0]  # (out, in, h, w)
    np.testing.assert_array_equal(np.asarray(params["trunk"]["conv1_1"]["kernel"]),
                                  conv.transpose(2, 3, 1, 0))
    assert "score_fr" in params

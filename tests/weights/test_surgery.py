"""fcnjax.weights.surgery: PyTorch weights give PyTorch's numbers, bad files are refused, stages grow."""

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

torch = pytest.importorskip("torch")

from fcnjax import models  # noqa: E402
from fcnjax.models.trunk import Trunk  # noqa: E402
from fcnjax.models.vgg import vgg16  # noqa: E402
from fcnjax.weights import pytorch, surgery  # noqa: E402
from tests import torch_reference  # noqa: E402

SIZES = ((37, 50), (48, 48))
"""An odd and an even input: with conv1_1's 100-pixel pad VGG16 still runs at ~240x250."""

TOLERANCE = 1e-4


@pytest.fixture(scope="module", autouse=True)
def highest_precision():
    previous = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", "highest")
    yield
    jax.config.update("jax_default_matmul_precision", previous)


@pytest.fixture(scope="module")
def trunk_weights():
    """Random pytorch-fcn trunk weights (conv1_1 ... fc7), shared by every reference net."""
    with torch.device("meta"):
        trunk = torch_reference.VGGTrunk()
    return torch_reference.random_state_dict(trunk, torch.Generator().manual_seed(0))


def reference_fcn(cls_name, trunk_weights, learnable, seed=1):
    """A reference net in eval mode and its state dict: random heads, upscore random or
    bilinear."""
    with torch.device("meta"):
        net = getattr(torch_reference, cls_name)()
    shapes = net.state_dict()
    upscores = [k for k in shapes if k.startswith("upscore")]
    skip = tuple(trunk_weights) + (() if learnable else tuple(upscores))
    state = torch_reference.random_state_dict(net, torch.Generator().manual_seed(seed), skip)
    state.update(trunk_weights)
    if not learnable:
        state.update({k: torch_reference.bilinear_weight(shapes[k].shape[0], shapes[k].shape[-1])
                      for k in upscores})
    net.load_state_dict(state, assign=True)
    return net.eval(), state


def relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def random_images(size, seed):
    """float32 (1, 3, H, W), on the scale of mean-subtracted pixels."""
    return (50 * np.random.default_rng(seed).standard_normal((1, 3, *size))).astype(np.float32)


@pytest.mark.parametrize("name, cls_name, learnable", [
    ("fcn32s", "FCN32s", False),
    ("fcn16s", "FCN16s", False),
    ("fcn8s", "FCN8s", True),
    ("fcn8s_atonce", "FCN8sAtOnce", False),
])
def test_fcn_parity_with_pytorch_fcn(name, cls_name, learnable, trunk_weights):
    net, state = reference_fcn(cls_name, trunk_weights, learnable)
    model = models.MODELS[name](learnable_upsampling=learnable)
    params = jax.tree.map(jnp.asarray, surgery.from_pytorch_fcn(state, model))
    for seed, size in enumerate(SIZES):
        images = random_images(size, seed)
        with torch.no_grad():
            want = net(torch.from_numpy(images)).numpy().transpose(0, 2, 3, 1)
        got = model.apply({"params": params}, images.transpose(0, 2, 3, 1))
        assert got.shape == want.shape == (1, *size, 21)
        error = relative_error(got, want)
        print(f"{name} learnable={learnable} {size}: relative error {error:.2e}")
        assert error < TOLERANCE


def test_vgg16_parity_with_torchvision_fc7(trunk_weights):
    with torch.device("meta"):
        net = torch_reference.VGG16()
    convs = [i for i, m in enumerate(net.features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision's indices
    state = torch_reference.random_state_dict(
        net, torch.Generator().manual_seed(2), skip=tuple(k for k in net.state_dict()
                                                          if k.startswith("features")))
    for index, (name, _, _) in zip(convs, torch_reference.VGG_CONVS):
        state[f"features.{index}.weight"] = trunk_weights[f"{name}.weight"]
        state[f"features.{index}.bias"] = trunk_weights[f"{name}.bias"]
    net.load_state_dict(state, assign=True)
    net.eval()
    images = random_images((224, 224), 3)
    with torch.no_grad():
        want = net(torch.from_numpy(images), stop=5).numpy()  # fc7 after ReLU

    params = surgery.from_torchvision_vgg16(state)
    assert params["fc6"]["kernel"].shape == (7, 7, 512, 4096)
    features = Trunk(vgg16(input_pad=1)).apply({"params": params}, images.transpose(0, 2, 3, 1))
    assert features["fc7"].shape == (1, 1, 1, 4096)
    error = relative_error(features["fc7"][:, 0, 0], want)
    print(f"vgg16 fc7: relative error {error:.2e}")
    assert error < TOLERANCE


class _WritesMarker:
    """Unpickling this opens (creates) the marker file: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_code_executing_weight_file_is_refused(tmp_path, writer):
    marker, proof = tmp_path / "pwned", tmp_path / "proof"
    path = tmp_path / "evil.pth"
    payload = {"conv1_1.weight": _WritesMarker(str(marker))}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(surgery.WeightFileError, match="would execute code") as info:
        pytorch.load_state_dict(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    # The payload is live: unsafe loading would indeed have run it.
    unsafe = {"conv1_1.weight": _WritesMarker(str(proof))}
    path.write_bytes(pickle.dumps(unsafe, protocol=2))
    pickle.loads(path.read_bytes())
    assert proof.exists() and not marker.exists()


def test_missing_and_junk_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        pytorch.load_state_dict(tmp_path / "nowhere.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a weight file at all")
    with pytest.raises(surgery.WeightFileError, match="junk.pth"):
        pytorch.load_state_dict(junk)
    not_weights = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(surgery.WeightFileError, match="not a state dict"):
        pytorch.load_state_dict(not_weights)


@pytest.mark.parametrize("wrap", [None, "model_state_dict", "state_dict"])
def test_saved_state_dict_round_trips(tmp_path, wrap):
    state = {"conv1_1.weight": torch.randn(64, 3, 3, 3), "conv1_1.bias": torch.randn(64),
             "half": torch.randn(5).half()}
    contents = state if wrap is None else {wrap: state, "epoch": 3, "arch": "FCN8s"}
    torch.save(contents, tmp_path / "w.pth")
    loaded = pytorch.load_state_dict(os.fspath(tmp_path / "w.pth"))
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], tensor.float().numpy())


def zero_state_dict(cls_name):
    """A pytorch-fcn state dict of the right shapes, all zeros (pages never touched)."""
    with torch.device("meta"):
        net = getattr(torch_reference, cls_name)()
    return {k: np.zeros(v.shape, np.float32) for k, v in net.state_dict().items()}


def test_mismatched_state_dict_names_missing_unexpected_and_misshapen_keys():
    state = zero_state_dict("FCN16s")
    del state["conv3_2.bias"]
    state["score_extra.weight"] = np.zeros((21, 7, 1, 1), np.float32)
    state["score_fr.weight"] = np.zeros((22, 4096, 1, 1), np.float32)
    with pytest.raises(surgery.WeightFileError) as info:
        surgery.from_pytorch_fcn(state, models.fcn16s(learnable_upsampling=True))
    message = str(info.value)
    assert "missing keys (1): conv3_2.bias" in message
    assert "unexpected keys (1): score_extra.weight" in message
    assert "score_fr.weight: found (22, 4096, 1, 1), expected (21, 4096, 1, 1)" in message


def test_mismatched_file_is_named(tmp_path):
    path = tmp_path / "fcn8s.pth"
    torch.save({"conv1_1.weight": torch.zeros(64, 3, 5, 5)}, path)
    with pytest.raises(surgery.WeightFileError) as info:
        surgery.from_pytorch_fcn(path, models.fcn8s())
    message = str(info.value)
    assert str(path) in message and "score_pool3.weight" in message and "upscore8.weight" in message
    assert "conv1_1.weight: found (64, 3, 5, 5), expected (64, 3, 3, 3)" in message


def test_learned_upscore_needs_learnable_upsampling():
    state = zero_state_dict("FCN32s")
    state["upscore.weight"] = torch_reference.bilinear_weight(21, 64).numpy()
    state["upscore.weight"][0, 0] += 0.01
    with pytest.raises(surgery.WeightFileError, match="learnable_upsampling=True"):
        surgery.from_pytorch_fcn(state, models.fcn32s())


def test_torchvision_keys_follow_vgg16_stages():
    keys = surgery.torchvision_vgg16_keys()
    assert keys["features.0.weight"][0] == ("conv1_1", "kernel")
    assert keys["features.28.bias"][0] == ("conv5_3", "bias")
    assert keys["classifier.3.weight"][0] == ("fc7", "kernel")
    assert len(keys) == 2 * 15


def test_check_matches_reports_every_difference():
    expected = {"a": {"kernel": np.zeros((3, 3, 1, 2))}, "b": {"bias": np.zeros(2)}}
    converted = {"a": {"kernel": np.zeros((3, 3, 2, 2))}, "c": {"bias": np.zeros(2)}}
    surgery.check_matches(expected, expected)
    with pytest.raises(surgery.WeightFileError) as info:
        surgery.check_matches(expected, converted)
    message = str(info.value)
    assert "missing keys (1): b/bias" in message
    assert "unexpected keys (1): c/bias" in message
    assert "a/kernel: found (3, 3, 2, 2), expected (3, 3, 1, 2)" in message


def test_transplant_copies_matching_leaves_only():
    target = {"keep": {"w": np.zeros(2)}, "same": {"w": np.zeros(3, np.float32)},
              "other": {"w": np.zeros((2, 2))}}
    source = {"same": {"w": np.arange(3.0)}, "other": {"w": np.ones(4)}, "gone": {"w": np.ones(1)}}
    out, report = surgery.transplant(target, source)
    np.testing.assert_array_equal(out["same"]["w"], [0, 1, 2])
    assert out["same"]["w"].dtype == np.float32
    np.testing.assert_array_equal(out["other"]["w"], np.zeros((2, 2)))
    assert report.copied == ("same/w",)
    assert report.kept == ("keep/w",)
    assert report.mismatched == (("other/w", (4,), (2, 2)),)
    assert report.unused == ("gone/w",)
    assert target["same"]["w"].sum() == 0  # pure


@pytest.fixture(scope="module")
def fcn32s_params(trunk_weights):
    _, state = reference_fcn("FCN32s", trunk_weights, learnable=False)
    return surgery.from_pytorch_fcn(state, models.fcn32s())


def _flat(tree):
    return traverse_util.flatten_dict(tree, sep="/")


def test_stage_init_grows_fcn16s_from_fcn32s_then_fcn8s(fcn32s_params):
    sample = jnp.zeros((1, 1, 1, 3))
    p16, report = surgery.stage_init(models.fcn16s(), fcn32s_params, jax.random.key(0), sample)
    assert set(report.new) == {"score_pool4/kernel", "score_pool4/bias"}
    assert "score_fr/kernel" in report.copied and "trunk/fc6/kernel" in report.copied
    flat16, flat32 = _flat(p16), _flat(fcn32s_params)
    assert all(np.array_equal(flat16[path], flat32[path]) for path in report.copied)
    assert not np.any(flat16["score_pool4/kernel"]) and not np.any(flat16["score_pool4/bias"])
    assert np.any(flat16["score_fr/kernel"])

    p8, report = surgery.stage_init(models.fcn8s(), p16, jax.random.key(1), sample)
    assert set(report.new) == {"score_pool3/kernel", "score_pool3/bias"}
    assert set(report.copied) == set(flat16)
    assert not np.any(_flat(p8)["score_pool3/kernel"])
    scores = models.fcn8s().apply({"params": p8}, random_images(SIZES[1], 4).transpose(0, 2, 3, 1))
    assert scores.shape == (1, *SIZES[1], 21) and bool(jnp.all(jnp.isfinite(scores)))


def test_stage_init_from_vgg_trunk_zeroes_scores_and_keeps_bilinear_upscores(fcn32s_params):
    model = models.fcn8s_atonce(learnable_upsampling=True)
    params, report = surgery.stage_init(model, {"trunk": fcn32s_params["trunk"]},
                                        jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
    assert set(report.new) == {f"{s}/{p}" for s in ("score_fr", "score_pool4", "score_pool3")
                               for p in ("kernel", "bias")} | {
        "upscore2/kernel", "upscore_pool4/kernel", "upscore8/kernel"}
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert not np.any(params[name]["kernel"])
    np.testing.assert_array_equal(params["upscore8"]["kernel"],
                                  torch_reference.bilinear_weight(21, 16).numpy()
                                  .transpose(2, 3, 0, 1))


def test_stage_init_refuses_old_params_missing_trunk_layers(fcn32s_params):
    trunk = dict(fcn32s_params["trunk"])
    del trunk["conv3_1"]
    with pytest.raises(ValueError, match="trunk/conv3_1/kernel"):
        surgery.stage_init(models.fcn16s(), {"trunk": trunk}, jax.random.key(0),
                           jnp.zeros((1, 1, 1, 3)))

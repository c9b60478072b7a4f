"""python -m fcnjax.export: one jax.export artifact per model, loaded by JAX alone.

Tiny nets only (a 2-level, 4-channel same U-Net; an FCN head on a three-stage trunk), so
each test runs in seconds on one CPU core. The artifact is run in a child process that
never imports fcnjax, and compared with fcnjax's own predict path in this one."""

import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from fcnjax import export, inference, predict
from fcnjax.data import transforms
from fcnjax.models.norm import state_variables
from fcnjax.run import checkpoint
from fcnjax.run.errors import ConfigError
from test_cli_datasets import cli, ok
from test_cli_errors import one_line
from test_slide_inference import tiny_config, tiny_fcn, unet_state

SIZES = ((32, 32), (37, 45), (9, 70))
"""Three image sizes one artifact must take (odd ones included)."""

CHILD = """
import json, sys
import jax, numpy as np
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
inputs = np.load(sys.argv[2])
np.savez(sys.argv[3], **{k: np.asarray(exported.call(inputs[k])) for k in inputs})
assert "fcnjax" not in sys.modules and "flax" not in sys.modules
print(json.dumps({"platforms": list(exported.platforms)}))
"""
"""Load an artifact with JAX alone and run it on every array of an .npz file."""

TINY = ["--config", "configs/sample.py", "--config.model.features=4",
        "--config.model.levels=2", "--config.input.crop_size=(32,32)"]
"""The command-line spelling of ``tiny_config()``'s model."""


def run_artifact(path, inputs, tmp_path):
    """({name: output}, platforms) of the artifact at ``path`` on ``inputs`` in a child
    process that imports jax and numpy only."""
    np.savez(tmp_path / "in.npz", **inputs)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path / "in.npz"),
                            str(tmp_path / "out.npz")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    outputs = np.load(tmp_path / "out.npz")
    return {k: outputs[k] for k in outputs}, json.loads(child.stdout.splitlines()[-1])["platforms"]


def write_images(folder, channels, seed=0):
    """One random uint8 PNG per size of SIZES; their paths."""
    folder.mkdir()
    rng, paths = np.random.default_rng(seed), []
    for h, w in SIZES:
        pixels = rng.integers(0, 256, (h, w, channels) if channels > 1 else (h, w), np.uint8)
        paths.append(folder / f"{h}x{w}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def expected_and_inputs(config, forward, paths):
    """predict's scores of each image file and the artifact's uint8 (1, H, W, C) inputs."""
    expected, inputs = {}, {}
    for path in paths:
        _, image = predict.load_image(str(path), config.input)
        pixels = np.asarray(Image.open(path))
        inputs[path.stem] = (pixels[..., None] if pixels.ndim == 2 else pixels)[None]
        expected[path.stem] = forward(image)
    return expected, inputs


def save_checkpoint(config, workdir):
    manager = checkpoint.make_manager(str(workdir))
    state = unet_state(config)
    checkpoint.save(manager, 1, state)
    checkpoint.wait(manager)
    manager.close()
    return state


def test_one_unet_artifact_predicts_three_sizes_as_predict_does_without_fcnjax(tmp_path):
    config = tiny_config(mode="whole")
    state = save_checkpoint(config, tmp_path / "work")
    ok(cli("fcnjax.export", *TINY, "--checkpoint", tmp_path / "work",
           "--output", tmp_path / "unet.jax"))
    expected, inputs = expected_and_inputs(config, inference.make_forward(config, state),
                                           write_images(tmp_path / "images", 1))
    outputs, platforms = run_artifact(tmp_path / "unet.jax", inputs, tmp_path)
    assert platforms == ["cpu", "cuda"]
    for name, scores in expected.items():
        assert outputs[name].shape == (1, *scores.shape)
        np.testing.assert_allclose(outputs[name][0], scores, rtol=1e-5, atol=1e-5)


def test_one_fcn_artifact_predicts_three_sizes_and_a_batch_as_predict_does(tmp_path):
    config = tiny_config(mode="whole")
    config.model = ml_collections.ConfigDict(dict(name="fcn8s", num_classes=3))  # its head
    config.input.update(image_mode="RGB", bgr=True, mean=(104.0, 116.7, 122.7), scale=1.0)
    model, params = tiny_fcn()
    forward = inference.image_forward(config, inference.make_apply(model.apply),
                                       {"params": params})
    expected, inputs = expected_and_inputs(config, forward, write_images(tmp_path / "im", 3))
    inputs["batch"] = np.concatenate([inputs["37x45"], inputs["37x45"][:, ::-1]])
    exported = export.export_prediction(config, model.apply, {"params": params})
    export.write(exported, tmp_path / "fcn.jax")
    outputs, _ = run_artifact(tmp_path / "fcn.jax", inputs, tmp_path)
    flipped = predict.load_image(str(tmp_path / "im" / "37x45.png"), config.input)[1][::-1]
    expected["batch"] = np.stack([expected["37x45"], forward(flipped)])
    for name, scores in expected.items():
        got = outputs[name] if name == "batch" else outputs[name][0]
        # the symbolic sizes build the bilinear matrices in the program: ~1e-6 apart
        np.testing.assert_allclose(got, scores, rtol=1e-5, atol=1e-5 * np.abs(scores).max())


def test_the_softmax_and_argmax_heads_give_probabilities_and_class_ids():
    config = tiny_config(mode="whole")
    state = unet_state(config)
    pixels = np.random.default_rng(1).integers(0, 256, (3, 24, 40, 1), np.uint8)
    normalised = transforms.normalize({"image": pixels[0]}, config.input.mean,
                                      config.input.scale, config.input.bgr)["image"]
    scores = inference.make_forward(config, state)(normalised)
    heads = {head: np.asarray(export.export_prediction(
        config, state.apply_fn, {"params": state.params}, head=head, size=(24, 40),
        platforms=("cpu",)).call(pixels)) for head in ("softmax", "argmax")}
    assert heads["argmax"].shape == (3, 24, 40) and heads["argmax"].dtype == np.int32
    np.testing.assert_array_equal(heads["argmax"][0], np.argmax(scores, -1))
    np.testing.assert_allclose(heads["softmax"][0], inference.softmax(scores), atol=1e-6)


@pytest.mark.parametrize("args, words", [
    (["--checkpoint", "/nonexistent/work"], ["fcnjax.export: error:", "/nonexistent/work"]),
    (["--config.model.name=fcn9s"], ["fcnjax.export: error:", "unknown model 'fcn9s'"]),
    (["--config.model.padding=valid"], ["valid-padding U-Net", "44, 48, 52, 56", "--size=44"]),
    (["--config.model.padding=valid", "--size=50"], ["--size=50x50", "48 and 52"]),
])
def test_what_cannot_be_exported_is_one_line(tmp_path, args, words):
    base = [*TINY, "--checkpoint", tmp_path / "work", "--output", tmp_path / "m.jax"]
    one_line(cli("fcnjax.export", *base, *args), *words)
    assert not (tmp_path / "m.jax").exists()


def test_a_missing_config_file_is_one_line(tmp_path):
    one_line(cli("fcnjax.export", "--config", "configs/nope.py", "--checkpoint", tmp_path,
                 "--output", tmp_path / "m.jax"), "fcnjax.export: error:", "configs/nope.py")


def test_a_valid_unet_exports_at_an_admissible_size_and_refuses_others():
    config = tiny_config(mode="whole", padding="valid")
    config.input.crop_size = (44, 44)
    with pytest.raises(ConfigError, match="nearest valid sizes: 48 and 52"):
        export.check_size(config, (48, 50))
    state = unet_state(config)
    exported = export.export_prediction(config, state.apply_fn, {"params": state.params}, size=(44, 48),
                                        platforms=("cpu",))
    assert exported.out_avals[0].shape[1:] == (4, 8, 2)  # the centre of a 44x48 input


def test_a_batch_norm_model_exports_with_its_running_statistics():
    """model.norm="batch": the artifact normalises with the train state's batch_stats, as
    predict does (make_forward), not with the statistics of the images it is given."""
    config = tiny_config(mode="whole", norm="batch")
    state = unet_state(config)
    stats = jax.tree.map(lambda x: x + 0.5, state.batch_stats)  # not init's zeros and ones
    state = state.replace(batch_stats=stats)
    pixels = np.random.default_rng(2).integers(0, 256, (2, 24, 40, 1), np.uint8)
    exported = export.export_prediction(config, state.apply_fn, state_variables(state),
                                         size=(24, 40), platforms=("cpu",))
    normalised = transforms.normalize({"image": pixels[1]}, config.input.mean,
                                      config.input.scale, config.input.bgr)["image"]
    np.testing.assert_allclose(np.asarray(exported.call(pixels))[1],
                               inference.make_forward(config, state)(normalised),
                               rtol=1e-5, atol=1e-5)

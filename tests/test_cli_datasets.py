"""The main job through its command lines on datasets it was never tuned to (issue 11).

Each test runs ``prepare`` / ``train`` / ``evaluate`` / ``predict`` as a user does, in a
subprocess, on data the test writes: images of five different sizes, and the ISBI 2012
layout prepared with the ``isbi2012`` builder and trained with ``configs/unet_isbi.py``.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (height, width) of the generated images: thin, wide, tall, VOC-like and odd
MIXED_SIZES = ((37, 211), (241, 1024), (1024, 207), (500, 375), (333, 517))


def cli(module, *args, timeout=600):
    """Run ``python -m module args`` in the checkout; the finished process."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def ok(run):
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def write_mixed_folder(root, sizes=MIXED_SIZES):
    """<root>/{train,val}/{image,label}/<i>.png: grey images, labels 0 / 255 in halves."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for kind in ("image", "label"):
            os.makedirs(root / split / kind)
        for i, (h, w) in enumerate(sizes):
            label = np.zeros((h, w), np.uint8)
            label[:, w // 2:] = 255
            image = np.clip(label * 0.5 + rng.normal(60, 20, (h, w)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / split / "image" / f"{i}.png")
            Image.fromarray(label).save(root / split / "label" / f"{i}.png")
    return root


def small_unet(*extra):
    """configs/sample.py overrides: a 2-level, 4-channel U-Net trained 2 steps."""
    return ["--config", "configs/sample.py", "--config.model.features=4",
            "--config.model.levels=2", "--config.train.steps=2", "--config.train.log_every=1",
            "--config.train.eval_every=2", "--config.train.checkpoint_every=2",
            "--config.train.batch_size=2", "--config.input.crop_size=(32,32)", *extra]


def test_train_evaluate_and_predict_images_of_five_sizes(tmp_path):
    data = write_mixed_folder(tmp_path / "data")
    work = tmp_path / "work"
    common = small_unet(f"--config.input.data_dir={data}", "--config.input.eval_size=()",
                        "--config.eval.num_draw=5", "--config.eval.batch_size=2")
    ok(cli("fcnjax.train", *common, "--workdir", work))
    records = [json.loads(line) for line in open(work / "metrics.jsonl")]
    evals = [r for r in records if r["mode"] == "eval"]
    assert evals and all(v is not None for v in evals[-1]["class_iu"])
    grid = Image.open(work / "predictions_000002.png")
    assert grid.width > 100 and grid.height > 100

    scored = ok(cli("fcnjax.evaluate", *common, "--checkpoint", work)).stdout
    assert "mean IU" in scored
    out = tmp_path / "masks"
    ok(cli("fcnjax.predict", *common, "--checkpoint", work, "--output", out,
           data / "val" / "image"))
    for i, (h, w) in enumerate(MIXED_SIZES):
        mask = Image.open(out / f"{i}.png")
        assert (mask.height, mask.width) == (h, w), i
        assert set(np.unique(np.asarray(mask))) <= {0, 1}


def write_isbi_layout(root, count=30, size=32):
    """zhixuhao/unet's data/membrane layout: train/{image,label}/N.png (labels 0 membrane,
    255 cell: 5x5 cells between one-pixel membranes) and an unlabelled test/."""
    rng = np.random.default_rng(0)
    label = np.full((size, size), 255, np.uint8)
    label[::6] = 0
    label[:, ::6] = 0
    for folder in ("train/image", "train/label", "test"):
        os.makedirs(root / folder)
    for i in range(count):
        image = np.clip(label * 0.6 + rng.normal(50, 20, label.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "train" / "image" / f"{i}.png")
        Image.fromarray(label).save(root / "train" / "label" / f"{i}.png")
    Image.fromarray(image).save(root / "test" / "0.png")
    return root


def test_the_documented_isbi_path_trains_on_both_classes(tmp_path):
    """prepare isbi2012, then configs/unet_isbi.py (reduced) on the prepared dataset: its
    label_values (0, 255), the files' encoding, must not turn the stored cells into void."""
    manual = write_isbi_layout(tmp_path / "membrane")
    tfds_dir = tmp_path / "tfds"
    ok(cli("fcnjax.data.prepare", "isbi2012", "--manual_dir", manual, "--tfds_data_dir", tfds_dir))
    work = tmp_path / "work"
    run = ok(cli("fcnjax.train", "--config", "configs/unet_isbi.py", "--workdir", work,
                 "--config.input.source=tfds", "--config.input.tfds_name=isbi2012",
                 f"--config.input.tfds_data_dir={tfds_dir}", "--config.prng_impl=rbg",
                 "--config.model.features=4", "--config.model.levels=2",
                 "--config.input.mirror_pad=20", "--config.input.crop_size=(60,60)",
                 "--config.input.eval_size=(76,76)", "--config.train.steps=2",
                 "--config.train.log_every=1", "--config.train.eval_every=2",
                 "--config.train.checkpoint_every=2"))
    fractions = [line for line in (run.stdout + run.stderr).splitlines()
                 if "membrane" in line and "cell" in line and "%" in line]
    assert fractions, run.stdout[-2000:] + run.stderr[-2000:]
    records = [json.loads(line) for line in open(work / "metrics.jsonl")]
    final = [r for r in records if r["mode"] == "eval"][-1]
    assert None not in final["class_iu"] and final["pixel_acc"] < 1.0
    train_loss = [r["loss"] for r in records if r["mode"] == "train"]
    assert min(train_loss) > 0.01  # one class everywhere would give a loss near 0


@pytest.mark.parametrize("override, words", [
    ("--config.input.label_values=(255,0)", "contradicts the prepared dataset isbi2012"),
    ("--config.model.num_classes=3", "num_classes"),
])
def test_a_config_that_contradicts_the_prepared_dataset_is_one_line(tmp_path, override, words):
    manual = write_isbi_layout(tmp_path / "membrane", count=2)
    tfds_dir = tmp_path / "tfds"
    ok(cli("fcnjax.data.prepare", "isbi2012", "--manual_dir", manual, "--tfds_data_dir", tfds_dir))
    run = cli("fcnjax.train", "--config", "configs/unet_isbi.py", "--workdir",
              tmp_path / "work", "--config.input.source=tfds",
              "--config.input.tfds_name=isbi2012", f"--config.input.tfds_data_dir={tfds_dir}",
              "--config.input.train_ids=", "--config.input.eval_ids=", override, timeout=120)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in run.stderr, lines
    assert not (tmp_path / "work").exists()  # refused before any folder is made

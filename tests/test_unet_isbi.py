"""configs/unet_isbi.py: the paper's recipe (ids split, border weights, elastic) trains."""

import json
import os

import numpy as np
from PIL import Image

from configs import unet_isbi
from fcnjax import train
from fcnjax.data import pipeline


def write_isbi_folder(root, count=30, size=32):
    """<root>/train/{image,label}/N.png, N = 0 .. count - 1: 5x5 cells (255) between
    one-pixel membranes (0), the image a noisy copy of the label."""
    rng = np.random.default_rng(0)
    label = np.full((size, size), 255, np.uint8)
    label[::6] = 0
    label[:, ::6] = 0
    for kind in ("image", "label"):
        os.makedirs(root / "train" / kind)
    for i in range(count):
        image = np.clip(label * 0.6 + rng.normal(50, 20, label.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "train" / "image" / f"{i}.png")
        Image.fromarray(label).save(root / "train" / "label" / f"{i}.png")
    return root


def small_config(data_dir):
    """The recipe with a 2-level, 4-channel U-Net (context 20 px) on 60x60 crops, 1 step."""
    config = unet_isbi.get_config()
    config.prng_impl = "rbg"
    config.model.update(features=4, levels=2)
    config.input.update(data_dir=str(data_dir), mirror_pad=20, crop_size=(60, 60),
                        eval_size=(76, 76))  # 32 + 2 * 20 mirrored, padded to a valid size
    config.train.update(steps=1, log_every=1, eval_every=1, checkpoint_every=1)
    return config


def test_the_config_sets_the_papers_recipe():
    config = unet_isbi.get_config().input
    assert (config.train_ids, config.eval_ids, config.eval_split) == ("0-24", "25-29", "train")
    assert config.border_weights and config.class_balance == "median_frequency"
    assert (config.border_w0, config.border_sigma) == (10.0, 5.0)
    assert config.elastic_std == 10.0 and config.elastic_grid == 3
    assert pipeline.uses_elastic(config)


def test_one_training_step_on_a_tiny_isbi_folder(tmp_path, monkeypatch):
    config = small_config(write_isbi_folder(tmp_path / "isbi2012"))
    seen = []
    original = pipeline.train_batches

    def recorded(*args, **kwargs):
        for batch in original(*args, **kwargs):
            seen.append(batch)
            yield batch

    monkeypatch.setattr(pipeline, "train_batches", recorded)
    evaluated = []
    eval_dataset = pipeline.eval_dataset

    def recorded_eval(*args, **kwargs):
        dataset = eval_dataset(*args, **kwargs)
        evaluated.append(len(dataset))
        return dataset

    monkeypatch.setattr(pipeline, "eval_dataset", recorded_eval)
    summary = train.train_and_evaluate(config, str(tmp_path / "work"))
    batch = seen[0]
    assert batch["weight"].shape == batch["label"].shape == (1, 60, 60)
    assert set(np.unique(batch["label"])) <= {0, 1, 255}
    assert (batch["weight"][batch["label"] == 255] == 0).all()
    assert batch["weight"].max() > 1.0  # the border term on membranes between cells
    assert 0.0 <= summary["mean_iu"] <= 1.0
    assert evaluated == [5]  # eval: images 25-29 of the train folder, batches of one
    with open(tmp_path / "work" / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert np.isfinite([r["loss"] for r in records if r["mode"] == "train"]).all()
    evals = [r for r in records if r["mode"] == "eval"]
    assert evals and evals[-1]["split"] == "train"

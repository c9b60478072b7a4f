"""scripts/isbi_compare.py end to end on a fake ISBI folder (tiny nets, one second each)."""

import json

import numpy as np
from PIL import Image

from scripts import isbi_compare


def fake_isbi(root, n=3, size=64):
    rng = np.random.default_rng(0)
    for sub in ("train/image", "train/label", "test"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        label = np.full((size, size), 255, np.uint8)
        label[::16] = 0
        label[:, ::16] = 0
        image = np.clip(label * 0.7 + rng.normal(0, 20, label.shape), 0, 255).astype(np.uint8)
        Image.fromarray(label).save(root / "train/label" / f"{i}.png")
        Image.fromarray(image).save(root / "train/image" / f"{i}.png")
        Image.fromarray(image).save(root / "test" / f"{i}.png")


def test_quick_comparison_trains_both_scores_and_writes_pngs(tmp_path):
    fake_isbi(tmp_path / "data")
    out = tmp_path / "run" / "results.json"
    report = isbi_compare.main([
        "--data_dir", str(tmp_path / "data"), "--out", str(out), "--quick",
        "--train_ids", "0-1", "--val_ids", "2", "--features", "2", "--levels", "2",
        "--tile", "92", "--seconds", "1", "--workers", "0", "--max_test", "1",
        "--prng_impl", "rbg"])
    saved = json.loads(out.read_text())
    for name in ("jax", "torch"):
        assert saved[name]["steps"] >= 1
        assert 0.0 <= saved[name]["val"]["rand_error"] <= 1.0
        assert 0.0 <= saved[name]["val"]["pixel_error"] <= 1.0
        png = np.asarray(Image.open(tmp_path / "run" / f"{name}_test" / "0.png"))
        assert png.shape == (64, 64) and png.dtype == np.uint8
    assert report["split"] == {"train": [0, 1], "val": [2], "test_predicted": ["0"]}
    assert saved["plan"] == {"tile": 92, "out": 52, "context": 20, "step": 52}


def test_parse_ids():
    assert isbi_compare.parse_ids("0-24") == list(range(25))
    assert isbi_compare.parse_ids("1,3,5-6") == [1, 3, 5, 6]

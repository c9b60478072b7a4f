"""The image-folder source, transforms and grain pipeline on tiny generated folders."""

import numpy as np
import pytest
from PIL import Image

from configs import sample
from fcnjax.data import pipeline, transforms
from fcnjax.data.image_folder import ImageFolder


def write_folder(root, split="train", sizes=((8, 10), (8, 10)), label_sizes=None):
    """PNG pairs 0.png, 1.png ... with labels in {0, 255}."""
    label_sizes = label_sizes or sizes
    rng = np.random.default_rng(0)
    for kind in ("image", "label"):
        (root / split / kind).mkdir(parents=True, exist_ok=True)
    for i, (size, label_size) in enumerate(zip(sizes, label_sizes)):
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(
            root / split / "image" / f"{i}.png")
        Image.fromarray((rng.random(label_size) < 0.5).astype(np.uint8) * 255).save(
            root / split / "label" / f"{i}.png")
    return root


def input_config(root, **overrides):
    config = sample.get_config().input
    config.update({"data_dir": str(root), "crop_size": (4, 6), **overrides})
    return config


def test_pairs_by_name_in_natural_order(tmp_path):
    write_folder(tmp_path, sizes=[(8, 10)] * 11)
    folder = ImageFolder(str(tmp_path), "train", image_mode="L")
    assert folder.names[:3] == ["0", "1", "2"] and folder.names[-1] == "10"
    example = folder[10]
    assert example["image"].shape == (8, 10, 1) and example["label"].shape == (8, 10)


def test_missing_label_names_the_file(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "train" / "label" / "1.png").unlink()
    with pytest.raises(FileNotFoundError, match="1.png"):
        ImageFolder(str(tmp_path), "train")


def test_size_mismatch_names_both_files(tmp_path):
    write_folder(tmp_path, sizes=((8, 10), (8, 10)), label_sizes=((8, 10), (8, 9)))
    folder = ImageFolder(str(tmp_path), "train", image_mode="L")
    with pytest.raises(ValueError, match=r"image/1\.png.*label/1\.png"):
        folder[1]


def test_label_values_map_to_classes_and_others_to_void():
    table = transforms.label_table((0, 255))
    label = np.array([[0, 255, 7]], np.uint8)
    mapped = transforms.map_labels({"label": label}, table)["label"]
    np.testing.assert_array_equal(mapped, [[0, 1, 255]])
    assert mapped.dtype == np.int32


def test_mirror_pad_reflects_image_and_voids_label():
    image = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    out = transforms.mirror_pad({"image": image, "label": np.zeros((3, 4), np.int32)}, 2)
    assert out["image"].shape == (7, 8, 1)
    np.testing.assert_array_equal(out["image"][2:5, 2:6], image)
    np.testing.assert_array_equal(out["image"][2, 1], image[0, 1])
    assert (out["label"][:2] == 255).all() and (out["label"][2:5, 2:6] == 0).all()


def test_train_batches_are_fixed_size_seeded_and_resumable(tmp_path):
    write_folder(tmp_path, sizes=((8, 10), (3, 5), (9, 7)))
    config = input_config(tmp_path)
    batches = pipeline.train_batches(config, 2, seed=3)
    first = [next(batches) for _ in range(4)]
    assert first[0]["image"].shape == (2, 4, 6, 1) and first[0]["label"].shape == (2, 4, 6)
    assert first[0]["image"].dtype == np.float32 and first[0]["label"].dtype == np.int32
    assert set(np.unique(np.concatenate([b["label"] for b in first]))) <= {0, 1, 255}
    resumed = next(pipeline.train_batches(config, 2, seed=3, start_step=3))
    np.testing.assert_array_equal(resumed["image"], first[3]["image"])


def test_eval_pads_to_canvas_or_scores_mixed_sizes_each_at_its_own(tmp_path):
    write_folder(tmp_path, split="val", sizes=((8, 10), (6, 10), (8, 10)))
    padded = list(pipeline.eval_dataset(input_config(tmp_path, eval_size=(8, 12)), "val", 2))
    assert [b["image"].shape for b in padded] == [(2, 8, 12, 1), (1, 8, 12, 1)]
    assert (padded[0]["label"][1, 6:] == 255).all()
    assert (padded[0]["label"][:, :, 10:] == 255).all()
    # no canvas: a batch of two sizes becomes one batch per size, in file order
    whole = list(pipeline.eval_dataset(input_config(tmp_path), "val", 2))
    assert [b["label"].shape for b in whole] == [(1, 8, 10), (1, 6, 10), (1, 8, 10)]
    padded = list(pipeline.eval_dataset(input_config(tmp_path, pad_batches=True), "val", 2))
    assert [b["label"].shape for b in padded] == [(2, 8, 10), (1, 8, 10)]


def test_empty_data_dir_is_a_clear_error():
    with pytest.raises(ValueError, match="data_dir"):
        pipeline.make_source(input_config(""), "train")


def test_shipped_sample_is_complete():
    config = sample.get_config().input
    for split, count in (("train", 6), ("val", 2)):
        folder = pipeline.make_source(config, split)
        assert len(folder) == count
        example = pipeline.preprocess(folder[0], config)
        assert example["image"].shape == (128, 128, 1)
        assert set(np.unique(example["label"])) == {0, 1}

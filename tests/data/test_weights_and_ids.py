"""Weight maps through the transforms and pipeline, id lists, elastic augmentation in the
pipeline."""

import numpy as np
import pytest
from fakes import write_isbi
from PIL import Image
from test_image_folder import input_config, write_folder

from fcnjax.data import ids, pipeline, transforms, weight_map
from fcnjax.data.classes import median_frequency_weights
from fcnjax.data.image_folder import ImageFolder


def example(size=(5, 7), seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.normal(size=(*size, 1)).astype(np.float32),
            "label": rng.integers(0, 2, size).astype(np.int32),
            "weight": rng.uniform(1.0, 2.0, size).astype(np.float32)}


def tag(ex):
    """``ex`` with label = pixel index (and the weight that index + 1000), so a transform's
    output label tells where each pixel came from."""
    h, w = ex["label"].shape
    index = np.arange(h * w, dtype=np.int32).reshape(h, w)
    return {**ex, "label": index, "weight": (index + 1000).astype(np.float32)}


def check_moved_together(out, ignore=255):
    """Real pixels keep weight = label + 1000; padded ones (label void) weigh 0."""
    real = out["label"] != ignore
    np.testing.assert_array_equal(out["weight"][real], out["label"][real] + 1000)
    assert (out["weight"][~real] == 0).all()


def test_pad_to_and_mirror_pad_give_the_weight_zero_where_they_pad():
    ex = example()
    padded = transforms.pad_to(ex, (8, 9))
    assert padded["weight"].shape == (8, 9)
    np.testing.assert_array_equal(padded["weight"][:5, :7], ex["weight"])
    assert (padded["weight"][5:] == 0).all() and (padded["weight"][:, 7:] == 0).all()
    mirrored = transforms.mirror_pad(ex, 2)
    assert mirrored["weight"].shape == mirrored["label"].shape == (9, 11)
    np.testing.assert_array_equal(mirrored["weight"][2:7, 2:9], ex["weight"])
    inside = np.zeros((9, 11), bool)
    inside[2:7, 2:9] = True
    assert (mirrored["weight"][~inside] == 0).all()


def test_crop_flip_scale_and_pad_batch_move_the_weight_with_the_label():
    ex = tag(example((6, 8)))
    for seed in range(6):  # several windows and both flip outcomes
        rng = np.random.default_rng(seed)
        check_moved_together(transforms.random_crop(ex, (4, 5), rng))
        check_moved_together(transforms.random_crop(ex, (9, 10), rng))  # padded first
        check_moved_together(transforms.random_flip(ex, rng))
    uint8 = {**ex, "image": np.zeros((6, 8, 1), np.uint8)}
    scaled = transforms.random_scale(uint8, (1.5, 2.0), rng)
    assert scaled["weight"].shape == scaled["label"].shape != (6, 8)
    check_moved_together(scaled)
    small = tag(example((3, 4)))
    for out in transforms.pad_batch([ex, small]):
        assert out["weight"].shape == (6, 8)
        check_moved_together(out)


def test_examples_without_a_weight_stay_without_one():
    ex = example()
    del ex["weight"]
    rng = np.random.default_rng(0)
    for out in (transforms.pad_to(ex, (8, 9)), transforms.mirror_pad(ex, 2),
                transforms.random_crop(ex, (4, 4), rng), transforms.random_flip(ex, rng)):
        assert set(out) == {"image", "label"}


@pytest.mark.parametrize("text,expected", [
    ("0-24", list(range(25))), ("1,3,5-6", [1, 3, 5, 6]), ("25, 26 ,27", [25, 26, 27]),
    ("", []), ("7", [7])])
def test_parse_ids(text, expected):
    assert ids.parse_ids(text) == expected


@pytest.mark.parametrize("text", ["a-b", "1-", "3-1", "1;2", "-2", "1,,2"])
def test_bad_id_lists_are_errors_that_quote_them(text):
    with pytest.raises(ValueError, match="id"):
        ids.parse_ids(text)


def isbi_like(root, count=6, size=(24, 24)):
    """``count`` images named 0..count-1 (value 10 * i) with cell / membrane labels: cells
    are 5x5 blocks separated by one-pixel membranes."""
    label = np.full(size, 255, np.uint8)
    label[::6] = 0
    label[:, ::6] = 0
    for kind in ("image", "label"):
        (root / "train" / kind).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full(size, 10 * i, np.uint8)).save(root / "train" / "image" / f"{i}.png")
        Image.fromarray(label).save(root / "train" / "label" / f"{i}.png")
    return root


def isbi_config(root, **overrides):
    return input_config(root, image_mode="L", label_values=(0, 255), bgr=False, mean=(0.0,),
                        scale=1.0, eval_split="train", **overrides)


def test_folder_ids_keep_the_named_images_in_the_given_order(tmp_path):
    config = isbi_config(isbi_like(tmp_path), train_ids="4,1-2", eval_ids="5", eval_size=())
    source = pipeline.make_source(config, "train", "train_ids")
    assert source.names == ["4", "1", "2"] and len(source) == 3
    assert [int(source[i]["image"][0, 0, 0]) for i in range(3)] == [40, 10, 20]
    images = {int(batch["image"][0, 0, 0, 0]) for batch in
              (next(pipeline.train_batches(config, 1, seed=s, shard=(0, 1))) for s in range(8))}
    assert images <= {40, 10, 20}
    evaluated = list(pipeline.eval_dataset(config, "train", 4))
    assert len(evaluated) == 1 and evaluated[0]["image"][:, 0, 0, 0].tolist() == [50]
    assert "weight" not in evaluated[0]
    # another split than eval_split is read whole
    assert len(pipeline.make_source(config, "train")) == 6


def test_ids_naming_missing_images_are_errors_that_name_them(tmp_path):
    config = isbi_config(isbi_like(tmp_path), train_ids="0-7,12")
    with pytest.raises(ValueError, match=r"config.input.train_ids '0-7,12' names 3 .*6, 7, 12"):
        pipeline.train_batches(config, 1, seed=0, shard=(0, 1))


def test_sources_without_names_select_by_index():
    class Plain:
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return i * 10

    subset = ids.select(Plain(), "3,0")
    assert [subset[i] for i in range(len(subset))] == [30, 0] and subset.names is None
    with pytest.raises(ValueError, match="lacks: 4"):
        ids.select(Plain(), "2-4")
    plain = Plain()
    assert ids.select(plain, "") is plain


def test_tfds_ids_match_the_name_feature(tmp_path, prepare):
    prepare("isbi2012", write_isbi(tmp_path / "membrane", train=4))
    config = input_config("", source="tfds", tfds_name="isbi2012", image_mode="L", bgr=False,
                          mean=(0.0,), scale=1.0, tfds_data_dir=str(tmp_path / "tfds"),
                          train_ids="3,1")
    source = pipeline.make_source(config, "train", "train_ids")
    assert source.names == ["3", "1"]
    assert [int(source[i]["image"][0, 0, 0]) for i in range(2)] == [21, 7]  # 7 * i
    with pytest.raises(ValueError, match="lacks: 9"):
        pipeline.make_source({**config, "train_ids": "9"}, "train", "train_ids")


def test_training_batches_carry_the_weight_map_zero_on_mirrored_and_padded_pixels(tmp_path):
    config = isbi_config(isbi_like(tmp_path, count=2, size=(12, 12)), mirror_pad=3,
                         crop_size=(20, 20), border_weights=True,
                         class_balance="median_frequency")
    batch = next(pipeline.train_batches(config, 2, seed=0, shard=(0, 1)))
    assert batch["weight"].shape == batch["label"].shape == (2, 20, 20)
    assert batch["weight"].dtype == np.float32
    void = batch["label"] == 255  # the 3 mirrored pixels and the pad up to 20
    assert void.any() and (batch["weight"][void] == 0).all()
    assert (batch["weight"][~void] > 0).all()
    # the real pixels' weights are the border weights of the stored label, w_c by median
    # frequency of the training labels
    source = pipeline.make_source(config, "train")
    label = transforms.map_labels(source[0], transforms.label_table((0, 255)))["label"]
    counts = weight_map.class_counts(label, 2) * 2
    w_c = median_frequency_weights(counts)
    expected = weight_map.border_weights(label, class_weights=w_c)
    real = [w[~v] for w, v in zip(batch["weight"], void)]
    for got in real:
        np.testing.assert_allclose(np.sort(got), np.sort(expected.ravel()), rtol=1e-6)


def test_class_balance_one_gives_membranes_the_border_term_only(tmp_path):
    config = isbi_config(isbi_like(tmp_path, count=1, size=(12, 12)), crop_size=(12, 12),
                         border_weights=True, border_w0=5.0)
    weight = next(pipeline.train_batches(config, 1, seed=0, shard=(0, 1)))["weight"][0]
    np.testing.assert_allclose(weight[3, 3], 1.0)       # inside a cell: w_c = 1
    d = 1.0                                              # membrane between two cells
    np.testing.assert_allclose(weight[6, 3], 1.0 + 5.0 * np.exp(-(2 * d) ** 2 / 50), rtol=1e-5)


@pytest.mark.parametrize("overrides,message", [
    (dict(border_weights=True, class_balance="inverse"), "unknown config.input.class_balance"),
    (dict(class_balance="median_frequency"), "needs border_weights"),
    (dict(border_weights=True, border_sigma=0.0), "border_sigma"),
    (dict(elastic_std=5.0, resample_order=2), "resample_order"),
    (dict(max_rotation=-1.0), ">= 0"),
])
def test_bad_weight_and_elastic_settings_are_clear_errors(tmp_path, overrides, message):
    config = isbi_config(isbi_like(tmp_path, count=1), **overrides)
    with pytest.raises(ValueError, match=message):
        pipeline.train_batches(config, 1, seed=0, shard=(0, 1))


def test_elastic_augmentation_keeps_label_values_and_moves_weights_alike(tmp_path):
    config = isbi_config(isbi_like(tmp_path, count=2, size=(30, 30)), mirror_pad=4,
                         crop_size=(24, 24), border_weights=True, elastic_std=4.0,
                         max_rotation=180.0, max_shift=3.0, contrast=0.1, brightness=0.1,
                         flip=True)
    batches = pipeline.train_batches(config, 2, seed=0, shard=(0, 1))
    plain = next(pipeline.train_batches({**config, "elastic_std": 0.0, "max_rotation": 0.0,
                                         "max_shift": 0.0, "contrast": 0.0,
                                         "brightness": 0.0}, 2, seed=0, shard=(0, 1)))
    for _ in range(3):
        batch = next(batches)
        assert batch["image"].shape == (2, 24, 24, 1)
        assert batch["weight"].shape == batch["label"].shape == (2, 24, 24)
        assert set(np.unique(batch["label"])) <= {0, 1, 255}
        assert (batch["weight"] >= 0).all() and np.isfinite(batch["image"]).all()
        assert (batch["weight"][batch["label"] == 255] == 0).all()
        # the deformation moves the labels off the plain crops' grid
        assert not np.array_equal(batch["label"], plain["label"])


def test_folder_names_are_what_ids_match(tmp_path):
    write_folder(tmp_path, sizes=[(8, 10)] * 3)
    folder = ImageFolder(str(tmp_path), "train", image_mode="L")
    assert ids.select(folder, "2,0").names == ["2", "0"]

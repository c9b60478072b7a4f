"""The grain pipeline over prepared tfds datasets: batches, shards, augmentation, padding."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from fakes import H, W, write_camvid
from fcnjax.data import pipeline, transforms
from test_image_folder import input_config


@pytest.fixture
def camvid(tmp_path, prepare):
    """Input config reading a prepared 4-image CamVid train split (image i is 10 * i + 1)."""
    prepare("camvid", write_camvid(tmp_path / "CamVid", counts=(
        ("train", 4), ("val", 3), ("test", 1))))
    return input_config("", source="tfds", tfds_name="camvid", image_mode="RGB",
                        tfds_data_dir=str(tmp_path / "tfds"), bgr=False, mean=(0.0,), scale=1.0,
                        label_values=(), crop_size=(H, W))


def test_tfds_batches_have_the_batch_format(camvid):
    batch = next(pipeline.train_batches(camvid, 2, seed=0, shard=(0, 1)))
    assert batch["image"].shape == (2, H, W, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (2, H, W) and batch["label"].dtype == np.int32
    assert set(np.unique(batch["label"])) <= {0, 1, 2, 3, 255}


def test_shuffle_is_seeded_and_every_epoch_sees_every_image(camvid):
    def firsts(seed):
        batches = pipeline.train_batches(camvid, 1, seed=seed, shard=(0, 1))
        return [int(next(batches)["image"][0, 0, 0, 0]) for _ in range(8)]
    assert firsts(5) == firsts(5) and firsts(5) != firsts(6)
    assert sorted(firsts(5)[:4]) == sorted(firsts(5)[4:]) == [1, 11, 21, 31]


def test_processes_train_on_disjoint_shards(camvid):
    seen = []
    for index in (0, 1):
        batches = pipeline.train_batches(camvid, 1, seed=0, shard=(index, 2))
        seen.append({int(next(batches)["image"][0, 0, 0, 0]) for _ in range(4)})
    assert seen == [{1, 21}, {11, 31}]


def test_eval_pads_a_batch_of_mixed_sizes_with_void(camvid):
    camvid.update(eval_size=(), pad_batches=True)
    dataset = pipeline.eval_dataset(camvid, "val", 2)
    big = transforms.pad_batch([{"image": np.zeros((2, 3, 1)), "label": np.zeros((2, 3), int)},
                                {"image": np.ones((4, 2, 1)), "label": np.ones((4, 2), int)}])
    assert [e["label"].shape for e in big] == [(4, 3), (4, 3)]
    assert (big[0]["label"][2:] == 255).all() and (big[1]["label"][:, 2:] == 255).all()
    assert next(iter(dataset))["image"].shape == (2, H, W, 3) and len(dataset) == 2


def test_random_scale_resizes_image_and_keeps_label_values():
    label = np.resize(np.int32([0, 3, 255]), (6, 8))
    example = {"image": np.zeros((6, 8, 3), np.uint8), "label": label}
    out = transforms.random_scale(example, (2.0, 2.0), np.random.default_rng(0))
    assert out["image"].shape == (12, 16, 3) and out["label"].shape == (12, 16)
    assert set(np.unique(out["label"])) == {0, 3, 255}
    assert transforms.random_scale(example, (), np.random.default_rng(0)) is example


def test_photometric_jitter_is_seeded_and_stays_in_range():
    image = np.random.default_rng(0).integers(0, 256, (6, 8, 3)).astype(np.uint8)
    example = {"image": image, "label": np.zeros((6, 8), np.int32)}
    one, two = (transforms.photometric_jitter(example, (0.5, 0.5, 0.5),
                                              np.random.default_rng(1)) for _ in range(2))
    np.testing.assert_array_equal(one["image"], two["image"])
    assert one["image"].min() >= 0 and one["image"].max() <= 255
    assert not np.allclose(one["image"], image)


def test_augmented_tfds_batches_keep_crop_size(camvid):
    camvid.update(scale_range=(0.5, 1.5), jitter=(0.2, 0.2, 0.2), flip=True, crop_size=(4, 4))
    batch = next(pipeline.train_batches(camvid, 3, seed=1, shard=(0, 1)))
    assert batch["image"].shape == (3, 4, 4, 3) and batch["label"].shape == (3, 4, 4)


def test_label_key_and_values_read_catalog_style_trimaps(tmp_path, prepare):
    """oxford_iiit_pet's features: image + segmentation_mask 1 pet, 2 background, 3 border."""

    class PetsLike(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "segmentation_mask": tfds.features.Image(shape=(None, None, 1))}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            from PIL import Image
            yield 0, {"image": Image.fromarray(np.zeros((H, W, 3), np.uint8)),
                      "segmentation_mask": Image.fromarray(np.resize(np.uint8([1, 2, 3]), (H, W)))}

    builder = PetsLike(data_dir=str(tmp_path / "pets"), file_format="array_record")
    builder.download_and_prepare()
    source = pipeline.TfdsSource(builder, "train", label_key="segmentation_mask")
    config = input_config("", image_mode="RGB", label_values=(2, 1))
    label = pipeline.preprocess(source[0], config)["label"]
    np.testing.assert_array_equal(label[0, :3], [1, 0, 255])

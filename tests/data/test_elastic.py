"""U-Net augmentation: elastic field, warps applied alike to image, label and weight."""

import numpy as np

from fcnjax.data import elastic


def example(size=(48, 40), seed=0):
    rng = np.random.default_rng(seed)
    label = (rng.random(size) < 0.3).astype(np.int32)
    label[:4] = 255
    return {"image": rng.normal(size=(*size, 2)).astype(np.float32), "label": label,
            "weight": rng.uniform(0.5, 3.0, size).astype(np.float32)}


def test_no_deformation_rotation_shift_or_flip_is_the_identity():
    ex = example()
    out = elastic.augment(ex, np.random.default_rng(1), elastic_std=0.0, max_rotation=0.0,
                          max_shift=0.0, flip=False)
    np.testing.assert_allclose(out["image"], ex["image"], atol=1e-4)
    np.testing.assert_array_equal(out["label"], ex["label"])
    np.testing.assert_allclose(out["weight"], ex["weight"], atol=1e-4)


def test_a_constant_grid_gives_a_constant_field_and_moves_a_pixel_by_it():
    grid = np.stack([np.full((3, 3), 3.0), np.full((3, 3), -2.0)])
    field = elastic.displacement_field((30, 25), grid)
    np.testing.assert_allclose(field[0], 3.0, atol=1e-5)
    np.testing.assert_allclose(field[1], -2.0, atol=1e-5)
    label = np.zeros((30, 25), np.int32)
    label[10, 10] = 1
    image = label[..., None].astype(np.float32)
    out = elastic.warp({"image": image, "label": label},
                       elastic.sampling_positions((30, 25), field=field))
    # output pixel p reads input p + (3, -2): the input's (10, 10) lands at (7, 12)
    assert np.argwhere(out["label"] == 1).tolist() == [[7, 12]]
    assert out["image"][7, 12, 0] == np.float32(out["image"].max())
    np.testing.assert_allclose(out["image"][7, 12, 0], 1.0, atol=1e-4)


def test_bicubic_field_passes_through_the_grid_nodes():
    grid = np.random.default_rng(2).normal(0, 10, (2, 3, 3))
    field = elastic.displacement_field((21, 41), grid)
    np.testing.assert_allclose(field[:, ::10, ::20], grid, atol=1e-4)


def test_labels_keep_their_values_and_void():
    ex = example()
    for seed in range(5):
        out = elastic.augment(ex, np.random.default_rng(seed), max_shift=5.0, contrast=0.2,
                              brightness=0.1)
        assert set(np.unique(out["label"])) <= {0, 1, 255}
        assert out["label"].dtype == ex["label"].dtype
        assert (out["weight"] >= 0).all()


def test_image_label_and_weight_move_together():
    """With nearest-neighbour sampling everywhere, three copies of one map stay copies."""
    label = np.random.default_rng(3).integers(0, 5, (36, 36)).astype(np.int32)
    ex = {"image": label[..., None].astype(np.float32), "label": label,
          "weight": label.astype(np.float32)}
    out = elastic.augment(ex, np.random.default_rng(4), max_shift=4.0, order=0)
    assert not np.array_equal(out["label"], label)
    np.testing.assert_array_equal(out["image"][..., 0], out["label"])
    np.testing.assert_array_equal(out["weight"], out["label"])


def test_same_seed_same_augmentation():
    ex = example()
    a = elastic.augment(ex, np.random.default_rng(7), contrast=0.1)
    b = elastic.augment(ex, np.random.default_rng(7), contrast=0.1)
    for key in ex:
        np.testing.assert_array_equal(a[key], b[key])


def test_nearest_neighbour_indexing_matches_scipy_mirror_mode():
    from scipy import ndimage
    rng = np.random.default_rng(5)
    x = rng.integers(0, 9, (13, 17))
    positions = rng.uniform(-30, 40, (2, 20, 20)).astype(np.float32)
    np.testing.assert_array_equal(elastic.resample(x, positions, 0),
                                  ndimage.map_coordinates(x, positions, order=0, mode="mirror"))

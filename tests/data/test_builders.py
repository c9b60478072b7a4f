"""Each builder prepared from a few files written in its dataset's real layout."""

import numpy as np
from PIL import Image

from fakes import (H, W, mask, read_all, rgb, save, save_mat, write_camvid, write_isbi,
                      write_lines)
from fcnjax.data.builders import folder


def test_camvid_splits_images_and_unlabelled_as_void(tmp_path, prepare):
    builder = prepare("camvid", write_camvid(tmp_path / "CamVid"))
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {
        "train": 2, "val": 1, "test": 1}
    assert len(builder.info.metadata["classes"]) == 11 and builder.info.metadata["void"] == 255
    first, second = read_all(builder, "train")
    assert first["name"] == b"0001TP_train0" and second["name"] == b"0001TP_train1"
    np.testing.assert_array_equal(second["image"], np.full((H, W, 3), 11))
    np.testing.assert_array_equal(np.unique(second["label"]), [0, 1, 3, 255])


def test_isbi2012_binary_labels_and_unlabelled_test(tmp_path, prepare):
    builder = prepare("isbi2012", write_isbi(tmp_path / "membrane"))
    train, test = read_all(builder, "train"), read_all(builder, "test")
    assert len(train) == 2 and len(test) == 1  # test/0_predict.png is not an image of the set
    assert train[1]["image"].shape == (H, W, 1) and (train[1]["image"] == 7).all()
    np.testing.assert_array_equal(train[0]["label"][0, :4, 0], [0, 1, 0, 1])
    assert (test[0]["label"] == 255).all()
    assert builder.info.metadata["classes"] == ["membrane", "cell"]


def write_voc(root, year, names, val):
    voc = root / "VOCdevkit" / f"VOC{year}"
    for i, name in enumerate(names):
        save(rgb(i), voc, "JPEGImages", name + ".jpg")
        save(mask([0, 15, 255, i], mode="P"), voc, "SegmentationClass", name + ".png")
    split = voc / "ImageSets" / "Segmentation"
    write_lines([n for n in names if n not in val], split, "train.txt")
    write_lines(val, split, "val.txt")
    return voc


def test_voc2011_seg11valid_is_val_minus_sbd_train_with_void_kept(tmp_path, prepare):
    names = ["2007_000032", "2007_000033", "2007_000039", "2007_000042"]
    write_voc(tmp_path, 2011, names, val=names[1:])
    write_lines(["2007_000033", "2008_000001"], tmp_path, "benchmark_RELEASE", "dataset",
                "train.txt")
    builder = prepare("voc_segmentation/2011", tmp_path)
    splits = {s: i.num_examples for s, i in builder.info.splits.items()}
    assert splits == {"train": 1, "val": 3, "seg11valid": 2}
    valid = read_all(builder, "seg11valid")
    assert [e["name"] for e in valid] == [b"2007_000039", b"2007_000042"]
    np.testing.assert_array_equal(np.unique(valid[0]["label"]), [0, 2, 15, 255])
    assert len(builder.info.metadata["classes"]) == 21


def test_voc2012_reads_palette_masks_as_class_ids(tmp_path, prepare):
    write_voc(tmp_path, 2012, ["a", "b"], val=["b"])
    builder = prepare("voc_segmentation/2012", tmp_path / "VOCdevkit")
    assert set(builder.info.splits) == {"train", "val"}
    (val,) = read_all(builder, "val")
    np.testing.assert_array_equal(val["label"][0, :4, 0], [0, 15, 255, 1])


def test_sbd_reads_gtcls_segmentation(tmp_path, prepare):
    dataset = tmp_path / "benchmark_RELEASE" / "dataset"
    for i, name in enumerate(["2008_000002", "2008_000003", "2008_000007"]):
        save(rgb(i), dataset, "img", name + ".jpg")
        seg = np.resize(np.uint8([0, 20, i]), H * W).reshape(H, W)
        save_mat(dataset / "cls" / (name + ".mat"),
                 GTcls={"Segmentation": seg, "CategoriesPresent": np.uint8([20])})
    write_lines(["2008_000002", "2008_000003"], dataset, "train.txt")
    write_lines(["2008_000007"], dataset, "val.txt")
    builder = prepare("sbd", tmp_path)
    train = read_all(builder, "train")
    assert len(train) == 2 and builder.info.splits["val"].num_examples == 1
    np.testing.assert_array_equal(train[1]["label"][0, :3, 0], [0, 20, 1])


def test_nyud_color_depth_hha_and_shifted_labels(tmp_path, prepare):
    for index in ("5001", "5002"):
        save(rgb(3), tmp_path, "data", "images", f"img_{index}.png")
        save(Image.fromarray(np.full((H, W), 1234, np.uint16)), tmp_path, "data", "depth",
             f"img_{index}.png")
        save(rgb(9), tmp_path, "data", "hha", f"img_{index}.png")
        seg = np.resize(np.uint8([0, 1, 40]), H * W).reshape(H, W)
        save_mat(tmp_path / "segmentation" / f"img_{index}.mat", segmentation=seg)
    write_lines(["5001"], tmp_path, "trainval.txt")
    write_lines(["5002"], tmp_path, "test.txt")
    builder = prepare("nyud_v2", tmp_path)
    assert set(builder.info.splits) == {"trainval", "test"}
    (example,) = read_all(builder, "test")
    assert example["name"] == b"img_5002" and len(builder.info.metadata["classes"]) == 40
    assert example["depth"].dtype == np.uint16 and (example["depth"] == 1234).all()
    assert (example["hha"] == 9).all()
    np.testing.assert_array_equal(example["label"][0, :3, 0], [255, 0, 39])


def test_sift_flow_semantic_and_geometric_labels(tmp_path, prepare):
    sub = "spatial_envelope_256x256_static_8outdoorcategories"
    for name in ("coast_a", "street_b"):
        save(rgb(4), tmp_path, "Images", sub, name + ".jpg")
        save_mat(tmp_path / "SemanticLabels" / sub / (name + ".mat"),
                 S=np.resize(np.int16([0, 1, 33]), H * W).reshape(H, W))
        save_mat(tmp_path / "GeoLabels" / sub / (name + ".mat"),
                 S=np.resize(np.int16([-1, 0, 1, 3]), H * W).reshape(H, W))
    write_lines(["coast_a"], tmp_path, "trainval.txt")
    write_lines(["street_b"], tmp_path, "test.txt")
    builder = prepare("sift_flow", tmp_path)
    (example,) = read_all(builder, "trainval")
    np.testing.assert_array_equal(example["label"][0, :3, 0], [255, 0, 32])
    np.testing.assert_array_equal(example["geo_label"][0, :4, 0], [255, 255, 0, 2])
    assert len(builder.info.metadata["classes"]) == 33
    assert builder.info.metadata["geo_classes"] == ["sky", "horizontal", "vertical"]


def test_folder_binary_masks_void_value_and_split_lists(tmp_path, prepare):
    for i in range(3):
        save(rgb(i), tmp_path, "images", f"{i}.jpg")
        save(mask([0, 255, 128]), tmp_path, "masks", f"{i}.png")
    write_lines(["2", "0"], tmp_path, "splits", "train.txt")
    write_lines(["1"], tmp_path, "splits", "val.txt")
    config = folder.FolderConfig(name="cells", mask="binary", void=128)
    builder = prepare(folder.SegmentationFolder, tmp_path, config=config)
    train = read_all(builder, "train")
    assert [e["name"] for e in train] == [b"2", b"0"]
    assert builder.info.splits["val"].num_examples == 1
    np.testing.assert_array_equal(train[0]["label"][0, :3, 0], [0, 1, 255])


def test_folder_palette_masks_without_lists_are_one_train_split(tmp_path, prepare):
    for i in range(2):
        save(rgb(i), tmp_path, "img", f"{i}.png")
        save(mask([0, 4, 255], mode="P"), tmp_path, "lbl", f"{i}.png")
    config = folder.FolderConfig(name="mine", image_dir="img", mask_dir="lbl", num_classes=5)
    builder = prepare(folder.SegmentationFolder, tmp_path, config=config)
    assert list(builder.info.splits) == ["train"] and len(builder.info.metadata["classes"]) == 5
    np.testing.assert_array_equal(read_all(builder, "train")[1]["label"][0, :3, 0], [0, 4, 255])

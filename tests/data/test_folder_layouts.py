"""One folder layout for the folder source and the segmentation_folder builder: both
arrangements, masks as people store them, TIFF images and stacks, bad lists and layouts."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from configs import sample
from fakes import H, W, mask, read_all, rgb, save, stack, write_camvid, write_lines
from fakes import write_user_folder
from fcnjax import predict
from fcnjax.data import transforms
from fcnjax.data.builders import BadExample, folder
from fcnjax.data.image_folder import ImageFolder, find_pairs, list_splits, read_image

SAMPLE = os.path.join(os.path.dirname(sample.__file__), "..", "fcnjax", "data", "sample",
                      "isbi2012")


def build(prepare, root, name, skip_bad=False, **fields):
    """``root`` prepared as segmentation_folder/<name> with FolderConfig ``fields``."""
    fields.setdefault("num_classes", 3)
    return prepare(folder.SegmentationFolder, root, skip_bad=skip_bad,
                   config=folder.FolderConfig(name=name, **fields))


def folder_examples(root, split, **kwargs):
    """(name, image, label) of every example of the folder source."""
    source = ImageFolder(str(root), split, **kwargs)
    return [(name, source[i]["image"], source[i]["label"]) for i, name in enumerate(source.names)]


def builder_examples(builder, split):
    """(name, image, label) of every prepared example, labels (H, W) as the folder gives."""
    return [(e["name"].decode(), e["image"], e["label"][..., 0]) for e in read_all(builder, split)]


def assert_same(left, right):
    assert [name for name, _, _ in left] == [name for name, _, _ in right]
    for (_, image_a, label_a), (_, image_b, label_b) in zip(left, right):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(label_a, label_b)


def test_both_arrangements_give_both_readers_the_same_examples(tmp_path, prepare):
    seen = {}
    for per_split in (False, True):
        root = write_user_folder(tmp_path / f"per_split_{per_split}", per_split=per_split)
        assert list_splits(str(root)) == ["train", "val"]
        builder = build(prepare, root, f"per_split_{per_split}")
        for split in ("train", "val"):
            examples = folder_examples(root, split)
            assert_same(examples, builder_examples(builder, split))
            seen.setdefault(split, []).append(examples)
    for split, (lists, folders) in seen.items():
        assert_same(lists, folders)
    assert [name for name, _, _ in seen["train"][0]] == ["0", "1"]
    np.testing.assert_array_equal(seen["val"][0][0][2][0, :4], [0, 1, 2, 2])


def test_shipped_sample_is_a_per_split_folder():
    assert list_splits(SAMPLE) == ["train", "val"]
    name, image, label = find_pairs(SAMPLE, "val")[0]
    assert image.endswith(os.path.join("val", "image", name + ".png"))
    assert label.endswith(os.path.join("val", "label", name + ".png"))


def test_without_split_lists_every_image_is_train(tmp_path, prepare):
    root = write_user_folder(tmp_path)
    shutil.rmtree(root / "splits")
    assert list_splits(str(root)) == ["train"]
    assert ImageFolder(str(root), "train").names == ["0", "1", "2"]
    with pytest.raises(FileNotFoundError, match=r"no split 'val'.*every image is in 'train'"):
        ImageFolder(str(root), "val")
    builder = build(prepare, root, "all_train")
    assert list(builder.info.splits) == ["train"]
    assert builder.info.splits["train"].num_examples == 3


def test_split_lists_keep_their_order(tmp_path):
    root = write_user_folder(tmp_path)
    write_lines(["2", "0"], root, "splits", "train.txt")
    assert ImageFolder(str(root), "train").names == ["2", "0"]


def palette(values):
    return mask(values, mode="P")


def sixteen_bit(values):
    return Image.fromarray(np.resize(np.uint16(values), H * W).reshape(H, W))


# name, mask image, file extension, builder fields, folder label_values, classes of 3 pixels
ENCODINGS = [
    ("index_png", mask([0, 2, 255]), ".png", {}, (), [0, 2, 255]),
    ("palette_png", palette([2, 0, 1]), ".png", {}, (), [2, 0, 1]),
    ("binary_png", mask([0, 255, 0]), ".png", {"mask": "binary"}, (0, 255), [0, 1, 0]),
    ("one_based_png", mask([0, 1, 3]), ".png", {"mask": "one_based"}, (1, 2, 3), [255, 0, 2]),
    ("index_tif", mask([1, 2, 0]), ".tif", {}, (), [1, 2, 0]),
    ("palette_tiff", palette([1, 0, 2]), ".tiff", {}, (), [1, 0, 2]),
    ("binary_tif", mask([255, 0, 0]), ".tif", {"mask": "binary"}, (0, 255), [1, 0, 0]),
    ("one_based_tif", mask([2, 0, 1]), ".tif", {"mask": "one_based"}, (1, 2, 3), [1, 255, 0]),
    ("index_16bit_tif", sixteen_bit([2, 1, 0]), ".tif", {}, (), [2, 1, 0]),
]


@pytest.mark.parametrize("name, stored, ext, fields, label_values, classes", ENCODINGS,
                         ids=[case[0] for case in ENCODINGS])
def test_mask_encodings_give_class_ids_through_both_readers(tmp_path, prepare, name, stored,
                                                            ext, fields, label_values,
                                                            classes):
    root = write_user_folder(tmp_path, splits=(("train", 1),), label=lambda n: stored,
                             mask_ext=ext)
    (example,) = read_all(build(prepare, root, name, **fields), "train")
    np.testing.assert_array_equal(example["label"][0, :3, 0], classes)
    raw = ImageFolder(str(root), "train")[0]
    mapped = transforms.map_labels(raw, transforms.label_table(label_values))["label"]
    np.testing.assert_array_equal(mapped[0, :3], classes)


def test_one_based_value_above_the_classes_names_the_mask(tmp_path, prepare):
    root = write_user_folder(tmp_path, splits=(("train", 1),), label=lambda n: mask([1, 4]))
    with pytest.raises(BadExample, match=r"masks/0\.png has values \[4\]"):
        build(prepare, root, "too_many", mask="one_based")


def grey_pixels():
    return np.arange(H * W, dtype=np.uint8).reshape(H, W, 1)


def rgb_pixels():
    return np.stack([grey_pixels()[..., 0], 100 - grey_pixels()[..., 0],
                     np.full((H, W), 7, np.uint8)], axis=-1)


@pytest.mark.parametrize("mode, pixels", [("L", grey_pixels()), ("RGB", rgb_pixels())])
def test_tiff_images_read_as_stored(tmp_path, prepare, mode, pixels):
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels)
    root = write_user_folder(tmp_path, splits=(("train", 1),), image=lambda n: image,
                             image_ext=".tif")
    path = str(root / "images" / "0.tif")
    np.testing.assert_array_equal(read_image(path, mode), pixels)
    np.testing.assert_array_equal(ImageFolder(str(root), "train", image_mode=mode)[0]["image"],
                                  pixels)
    (example,) = read_all(build(prepare, root, f"tif_{mode}", image_mode=mode), "train")
    np.testing.assert_array_equal(example["image"], pixels)


def test_predict_reads_tiff_images(tmp_path):
    path = save(Image.fromarray(rgb_pixels()), tmp_path, "in", "a.tif")
    assert predict.image_paths([str(tmp_path / "in")]) == [path]
    display, network = predict.load_image(path, sample.get_config().input)
    np.testing.assert_array_equal(display, np.repeat(grey_from_rgb(rgb_pixels()), 3, -1))
    assert network.shape == (H, W, 1) and network.dtype == np.float32


def grey_from_rgb(pixels):
    """PIL's own RGB -> L conversion (the sample config reads images as "L")."""
    return np.asarray(Image.fromarray(pixels).convert("L"))[..., None]


def test_16_bit_images_are_refused_not_rescaled(tmp_path, prepare):
    wide = Image.fromarray(np.full((H, W), 4000, np.uint16))
    root = write_user_folder(tmp_path, splits=(("train", 2),),
                             image=lambda n: wide if n == 1 else rgb(n), image_ext=".tif")
    error = r"1\.tif has 'I;16' \(16/32-bit\) pixels.*rescale it to uint8"
    with pytest.raises(ValueError, match=error):
        read_image(str(root / "images" / "1.tif"), "L")
    with pytest.raises(ValueError, match=error):
        ImageFolder(str(root), "train")[1]
    with pytest.raises(BadExample, match=error):
        build(prepare, root, "wide")
    builder = build(prepare, root, "wide_skipped", skip_bad=True)
    assert [name for name, _ in builder.skipped] == ["1"]


def test_tiff_stack_is_one_example_per_page_in_the_builder(tmp_path, prepare):
    images = [Image.fromarray(np.full((H, W), 10 * (p + 1), np.uint8)) for p in range(3)]
    stack(images, tmp_path, "images", "volume.tif")
    stack([mask([0, 255]), mask([255, 0]), mask([255, 255])], tmp_path, "masks", "volume.tif")
    examples = read_all(build(prepare, tmp_path, "stack", mask="binary", image_mode="L"),
                        "train")
    assert [e["name"] for e in examples] == [b"volume_0", b"volume_1", b"volume_2"]
    assert [e["image"][0, 0, 0] for e in examples] == [10, 20, 30]
    assert [e["label"][0, :2, 0].tolist() for e in examples] == [[0, 1], [1, 0], [1, 1]]
    with pytest.raises(ValueError, match=r"volume\.tif holds 3 pages; .*one image per file"):
        ImageFolder(str(tmp_path), "train")[0]


def test_stack_and_mask_of_other_page_counts_are_refused(tmp_path, prepare):
    stack([rgb(1), rgb(2), rgb(3)], tmp_path, "images", "volume.tif")
    stack([mask([0]), mask([1])], tmp_path, "masks", "volume.tif")
    with pytest.raises(ValueError, match=r"volume\.tif has 3 pages but its mask .* has 2"):
        build(prepare, tmp_path, "pages")


def test_name_listed_twice_names_the_list_and_both_lines(tmp_path, prepare):
    root = write_user_folder(tmp_path)
    write_lines(["0", "", "1", "0"], root, "splits", "train.txt")
    error = r"splits/train\.txt names '0' twice, on lines 1 and 4"
    with pytest.raises(ValueError, match=error):
        ImageFolder(str(root), "train")
    with pytest.raises(ValueError, match=error):
        build(prepare, root, "twice")


def test_every_builder_refuses_a_name_listed_twice(tmp_path, prepare):
    root = write_camvid(tmp_path / "CamVid")
    line = "/SegNet/CamVid/val/0001TP_val0.png /SegNet/CamVid/valannot/0001TP_val0.png"
    write_lines([line, line], root, "val.txt")
    with pytest.raises(ValueError, match=r"val\.txt names .*0001TP_val0.* lines 1 and 2"):
        prepare("camvid", root)


def test_folder_of_neither_arrangement_says_what_was_looked_for(tmp_path, prepare):
    save(rgb(1), tmp_path, "pics", "a.png")
    save(mask([0]), tmp_path, "annotations", "a.png")
    error = r"neither \{images,image\}/ .* nor <split>/\{images,image\}/"
    with pytest.raises(FileNotFoundError, match=error):
        ImageFolder(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match=error):
        build(prepare, tmp_path, "wrong")
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        list_splits(str(tmp_path / "absent"))


def test_explicit_folder_names_still_work(tmp_path):
    save(rgb(1), tmp_path, "train", "img", "a.png")
    save(mask([1]), tmp_path, "train", "lbl", "a.tif")
    with pytest.raises(FileNotFoundError, match=r"neither \{images,image\}/"):
        list_splits(str(tmp_path))
    assert list_splits(str(tmp_path), "img") == ["train"]
    source = ImageFolder(str(tmp_path), "train", image_dir="img", label_dir="lbl")
    assert source.names == ["a"] and (source[0]["label"] == 1).all()
    with pytest.raises(FileNotFoundError, match=r"no mask folder masks or labels or mask or "
                                                r"label in .*train next to .*img"):
        ImageFolder(str(tmp_path), "train", image_dir="img")


def test_two_files_of_one_name_are_refused(tmp_path):
    root = write_user_folder(tmp_path, splits=(("train", 1),))
    save(rgb(3), root, "images", "0.jpg")
    with pytest.raises(ValueError, match=r"images holds two files named '0' \(0\.jpg, 0\.png\)"):
        ImageFolder(str(root), "train")


def test_listed_name_without_an_image_names_it(tmp_path):
    root = write_user_folder(tmp_path)
    write_lines(["0", "7"], root, "splits", "val.txt")
    with pytest.raises(FileNotFoundError, match=r"val\.txt names 1 image\(s\) not in .*'7'"):
        ImageFolder(str(root), "val")


def test_empty_split_folder_is_an_error(tmp_path):
    root = write_user_folder(tmp_path)
    shutil.rmtree(root / "splits")
    (root / "splits").mkdir()
    with pytest.raises(FileNotFoundError, match=r"splits holds no <split>\.txt list"):
        list_splits(str(root))

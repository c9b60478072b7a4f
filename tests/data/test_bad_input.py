"""Every kind of bad input gives an error naming the file and the fix, or a counted skip."""

import numpy as np
import pytest
from PIL import Image

from fakes import H, W, mask, rgb, save, write_camvid, write_isbi, write_lines
from fcnjax.data import pipeline
from fcnjax.data.builders import BadExample, folder
from test_image_folder import input_config


def truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def test_truncated_image_names_the_file_and_the_fix(tmp_path, prepare):
    root = write_camvid(tmp_path / "CamVid")
    truncate(root / "train" / "0001TP_train1.png")
    with pytest.raises(BadExample, match=r"0001TP_train1\.png.*(corrupt|truncated).*--skip_bad"):
        prepare("camvid", root)


def test_skip_bad_leaves_out_and_counts_bad_files(tmp_path, prepare):
    root = write_camvid(tmp_path / "CamVid", counts=(("train", 3), ("val", 1), ("test", 1)))
    (root / "train" / "0001TP_train0.png").write_bytes(b"not a png")
    save(mask([0, 200]), root, "trainannot", "0001TP_train2.png")
    builder = prepare("camvid", root, skip_bad=True)
    assert builder.info.splits["train"].num_examples == 1
    assert [name for name, _ in builder.skipped] == ["0001TP_train0", "0001TP_train2"]
    assert "200" in builder.skipped[1][1]


def test_mask_of_another_size_names_both_files(tmp_path, prepare):
    root = write_isbi(tmp_path / "membrane")
    save(Image.fromarray(np.zeros((H, W + 1), np.uint8)), root, "train", "label", "1.png")
    with pytest.raises(BadExample, match=r"image/1\.png is 8x6 but its mask .*label/1\.png is 9x6"):
        prepare("isbi2012", root)


def test_label_outside_the_classes_names_file_and_values(tmp_path, prepare):
    root = write_camvid(tmp_path / "CamVid")
    save(mask([0, 12, 40]), root, "valannot", "0001TP_val0.png")
    with pytest.raises(BadExample, match=r"valannot/0001TP_val0\.png has values \[12, 40\]"):
        prepare("camvid", root)


def test_rgb_mask_where_indices_are_expected(tmp_path, prepare):
    root = write_camvid(tmp_path / "CamVid")
    save(rgb(3), root, "trainannot", "0001TP_train0.png")
    with pytest.raises(BadExample, match=r"0001TP_train0\.png is 'RGB' \(colour-coded\).*class id"):
        prepare("camvid", root)


def test_empty_split_list_is_an_error(tmp_path, prepare):
    root = write_camvid(tmp_path / "CamVid")
    write_lines([], root, "test.txt")
    with pytest.raises(ValueError, match=r"test\.txt is empty"):
        prepare("camvid", root)


def test_missing_directory_names_it(tmp_path, prepare):
    root = write_camvid(tmp_path / "CamVid")
    (root / "valannot" / "0001TP_val0.png").unlink()
    (root / "valannot").rmdir()
    with pytest.raises(FileNotFoundError, match=r"missing directory .*valannot.*--manual_dir"):
        prepare("camvid", root)


def test_folder_image_without_mask_names_it(tmp_path, prepare):
    save(rgb(1), tmp_path, "images", "a.png")
    save(rgb(1), tmp_path, "images", "b.png")
    save(mask([0, 1]), tmp_path, "masks", "a.png")
    config = folder.FolderConfig(name="x", num_classes=2)
    with pytest.raises(BadExample, match=r"b\.png has no mask .*masks/b\.png"):
        prepare(folder.SegmentationFolder, tmp_path, config=config)


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path):
    config = input_config("", source="tfds", tfds_name="camvid",
                          tfds_data_dir=str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="python -m fcnjax.data.prepare camvid"):
        pipeline.make_source(config, "train")

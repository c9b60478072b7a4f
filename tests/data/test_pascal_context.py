"""PASCAL-Context's 59-class task prepared from fake files in the distributed layout."""

import os

import numpy as np
import pytest
from fakes import H, W, read_all, save_mat, write_lines, write_pascal_context

from fcnjax.data.builders import BadExample, pascal_context
from fcnjax.data.classes import CLASS_SETS
from fcnjax.run.errors import DataError

TASK = pascal_context.CLASSES[1:]


def test_classes_are_the_reference_60_in_model_order():
    assert len(pascal_context.CLASSES) == 60 and pascal_context.CLASSES[0] == "background"
    assert pascal_context.CLASSES == CLASS_SETS["pascal_context"]
    assert pascal_context.CLASSES.index("tvmonitor") == 20
    assert pascal_context.CLASSES.index("wood") == 59


def test_ids_map_to_task_classes_and_other_names_to_background(tmp_path, prepare):
    ids = write_pascal_context(tmp_path, TASK)
    assert ids["aeroplane"] != 1  # labels.txt numbering differs from the class ids
    builder = prepare("pascal_context", tmp_path)
    assert {s: i.num_examples for s, i in builder.info.splits.items()} == {"train": 2, "val": 1}
    assert builder.info.metadata["classes"] == list(pascal_context.CLASSES)
    first, second = read_all(builder, "train")
    assert first["name"] == b"2008_train0" and second["name"] == b"2008_train1"
    assert first["image"].shape == (H, W, 3)
    # aeroplane, table -> diningtable, cloth -> clothes, bedclothes -> bedcloth, wood,
    # another of the 459 names, 0, an id labels.txt lacks: the last three background.
    np.testing.assert_array_equal(first["label"][0, :, 0], [1, 11, 28, 52, 59, 0, 0, 0])
    np.testing.assert_array_equal(second["label"][0, :, 0], [1, 11, 28, 52, 59, 0, 0, 0])
    (val,) = read_all(builder, "val")
    assert val["name"] == b"2008_val0" and not (val["label"] == 255).any()


def test_reference_data_folder_layout(tmp_path, prepare):
    write_pascal_context(tmp_path / "pascal-context", TASK, counts=(("train", 1), ("val", 1)))
    os.makedirs(tmp_path / "pascal")
    os.rename(tmp_path / "pascal-context" / "VOC2010", tmp_path / "pascal" / "VOC2010")
    builder = prepare("pascal_context", tmp_path)
    (train,) = read_all(builder, "train")
    np.testing.assert_array_equal(train["label"][0, :5, 0], [1, 11, 28, 52, 59])


def test_bad_label_file_is_a_bad_example_or_a_counted_skip(tmp_path, prepare):
    write_pascal_context(tmp_path, TASK, counts=(("train", 3), ("val", 1)))
    (tmp_path / "trainval" / "2008_train1.mat").write_bytes(b"not a mat file")
    save_mat(tmp_path / "trainval" / "2008_train2.mat",
             LabelMap=np.ones((H + 1, W), np.uint16))
    with pytest.raises(BadExample, match=r"2008_train1\.mat.*LabelMap"):
        prepare("pascal_context", tmp_path)
    builder = prepare("pascal_context", tmp_path, skip_bad=True,
                      data_dir=str(tmp_path / "skipped"))
    assert builder.info.splits["train"].num_examples == 1
    assert [name for name, _ in builder.skipped] == ["2008_train1", "2008_train2"]
    assert "8x7" in builder.skipped[1][1]


def test_label_lists_that_disagree_with_the_task_are_refused(tmp_path):
    write_pascal_context(tmp_path, TASK)
    labels, task = tmp_path / "labels.txt", tmp_path / "59_labels.txt"
    table = pascal_context.class_of_id(str(labels), str(task))
    assert table.max() == 59 and (table > 0).sum() == 59
    swapped = list(TASK)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    write_lines([f"{i}: {c}" for i, c in enumerate(swapped, 1)], tmp_path, "59_labels.txt")
    with pytest.raises(DataError, match=r"1: 'bicycle' \(expected 'aeroplane'\)"):
        pascal_context.class_of_id(str(labels), str(task))
    write_lines([f"{i}: {c}" for i, c in enumerate(TASK, 1)], tmp_path, "59_labels.txt")
    write_lines(["1: aeroplane", "2: bicycle"], tmp_path, "labels.txt")
    with pytest.raises(DataError, match=r"no 'bird' \(class 3"):
        pascal_context.class_of_id(str(labels), str(task))
    write_lines(["one: aeroplane"], tmp_path, "labels.txt")
    with pytest.raises(DataError, match="line 1"):
        pascal_context.class_of_id(str(labels), str(task))


def test_missing_folders_name_what_belongs_there(tmp_path, prepare):
    write_pascal_context(tmp_path, TASK)
    os.remove(tmp_path / "labels.txt")
    with pytest.raises(FileNotFoundError, match="labels.txt"):
        prepare("pascal_context", tmp_path)

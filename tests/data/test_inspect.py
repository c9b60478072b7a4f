"""The label survey (fcnjax.data.survey) and python -m fcnjax.data.inspect on tiny datasets.

Every count below is worked out by hand from the labels the test writes.
"""

import numpy as np
import pytest
from fakes import write_camvid
from PIL import Image

from fcnjax.data import classes, ids, inspect, survey
from fcnjax.data.image_folder import ImageFolder
from fcnjax.data.pipeline import TfdsSource

NAMES = ["bg", "fg"]


def write_raw(root, split, labels, grey=()):
    """<root>/<split>/image/<i>.png (RGB, or "L" for indices in ``grey``) and
    <root>/<split>/label/<i>.png holding ``labels[i]``."""
    for kind in ("image", "label"):
        (root / split / kind).mkdir(parents=True, exist_ok=True)
    for i, label in enumerate(labels):
        label = np.asarray(label, np.uint8)
        shape = label.shape if i in grey else label.shape + (3,)
        image = Image.fromarray(np.full(shape, 20 * i % 256, np.uint8))
        image.save(root / split / "image" / f"{i}.png")
        Image.fromarray(label).save(root / split / "label" / f"{i}.png")
    return root


def made(stored, num_classes=2, label_values=(), examples=3, sampled=None, split="train"):
    """A Survey of ``stored`` {value: pixels} as read from ``sampled`` of ``examples``."""
    sampled = examples if sampled is None else sampled
    return survey.Survey(split=split, examples=examples, sampled=sampled,
                         complete=sampled == examples, timed_out=False, height=(4, 4),
                         width=(4, 4), channels=(3,), stored=dict(stored),
                         label_values=tuple(label_values), num_classes=num_classes)


# Two labels of different sizes: {0: 2, 1: 3, 255: 1} and {0: 2, 1: 1, 7: 1, 255: 2}.
LABEL_A = [[0, 0, 255], [1, 1, 1]]
LABEL_B = [[1, 7], [0, 0], [255, 255]]


def test_survey_of_a_raw_folder_counts_stored_values_classes_and_void(tmp_path):
    write_raw(tmp_path, "train", [LABEL_A, LABEL_B], grey=(1,))
    result = survey.survey(ImageFolder(str(tmp_path), "train"), 2, split="train")
    assert (result.examples, result.sampled, result.complete) == (2, 2, True)
    assert result.height == (2, 3) and result.width == (2, 3) and result.channels == (1, 3)
    assert result.stored == {0: 4, 1: 4, 7: 1, 255: 3} and result.pixels == 12
    assert result.class_pixels.tolist() == [4, 4]
    assert result.void_pixels == 4 and result.unmapped == {7: 1}  # 7 is no class id < 2
    assert survey.fractions_line(result, NAMES) == (
        "train labels (2 images): bg 33.3%, fg 33.3%, void 33.3%")
    np.testing.assert_allclose(classes.median_frequency_weights(result.class_pixels), [1.0, 1.0])
    mapped = survey.remap(result, (0, 1, 7), 3)  # 7 is class 2 now, 255 stays void
    assert mapped.class_pixels.tolist() == [4, 4, 1]
    assert mapped.void_pixels == 3 and mapped.unmapped == {}


def test_survey_of_a_prepared_tfds_split_and_of_an_ids_subset(tmp_path, prepare):
    # fake CamVid mask of train image i cycles 0, 3, 11 (void), i: 12 of its 48 pixels each
    counts = (("train", 3), ("val", 1), ("test", 1))
    builder = prepare("camvid", write_camvid(tmp_path / "CamVid", counts=counts))
    source = TfdsSource(builder, "train")
    result = survey.survey(source, 11)
    assert (result.split, result.examples, result.sampled, result.complete) == (
        "train", 3, 3, True)
    assert result.height == (6, 6) and result.width == (8, 8) and result.channels == (3,)
    assert result.stored == {0: 48, 1: 12, 2: 12, 3: 36, 255: 36}
    assert result.class_pixels.tolist() == [48, 12, 12, 36] + [0] * 7
    assert result.void_pixels == 36 and result.unmapped == {}
    subset = survey.survey(ids.Subset(source, [2, 0]), 11)  # images 2 and 0
    assert subset.examples == 2 and subset.stored == {0: 36, 2: 12, 3: 24, 255: 24}


def test_the_isbi_case_labels_storing_0_1_read_with_label_values_0_255(tmp_path):
    write_raw(tmp_path, "train", [[[0, 1], [1, 1]], [[0, 0], [1, 1]]])
    result = survey.survey(ImageFolder(str(tmp_path), "train"), 2, (0, 255), split="train")
    assert result.stored == {0: 3, 1: 5} and result.unmapped == {1: 5}
    assert result.class_pixels.tolist() == [3, 0] and result.void_pixels == 5
    with pytest.raises(survey.DegenerateData) as caught:
        survey.check_training_data(result, ["membrane", "cell"])
    message = str(caught.value)
    assert message.startswith(
        "train labels store values [0, 1] but config.input.label_values = (0, 255) maps only "
        "0 and 255 to classes: 1 becomes void (62.5% of the pixels of the 2 train images); set "
        "config.input.label_values = (0, 1)")
    assert "\n" not in message and message.endswith("(and 2 more problem(s))")


def test_every_labelled_pixel_one_class_is_degenerate():
    with pytest.raises(survey.DegenerateData, match=r"^every labelled pixel of the 3 train "
                       r"images is fg \(class 1\): the model would learn one class"):
        survey.check_training_data(made({1: 10, 255: 2}), NAMES)


def test_more_than_half_void_is_degenerate():
    result = made({0: 2, 1: 2, 255: 5})  # void 5 of 9
    with pytest.raises(survey.DegenerateData, match=r"^55\.6% of the pixels of the 3 train "
                       r"images are void \(255\), more than half"):
        survey.check_training_data(result, NAMES)
    survey.check_training_data(made({0: 2, 1: 2, 255: 4}), NAMES)  # exactly half: fine


def test_all_void_labels_say_they_are_unlabelled():
    with pytest.raises(survey.DegenerateData, match=r"every pixel of the 3 train images is "
                       r"void \(255\).*hold only 255 \(unlabelled\)"):
        survey.check_training_data(made({255: 16}), NAMES)


def test_binary_masks_read_as_class_ids_name_the_label_values_to_set():
    found = survey.problems(made({0: 3, 255: 13}, label_values=(0, 1)), NAMES)
    assert len(found) == 2 and all(p.endswith("the labels store values [0, 255]: if each is "
                                              "a class, set config.input.label_values = "
                                              "(0, 255)") for p in found)


def test_an_absent_class_is_named_honestly_for_a_full_and_a_sampled_scan():
    names = ["bg", "fg", "edge"]
    with pytest.raises(survey.DegenerateData, match=r"^class edge \(2\) never appears in "
                       r"the 3 train images: "):
        survey.check_training_data(made({0: 5, 1: 5}, num_classes=3), names)
    sampled = made({0: 5, 1: 5}, num_classes=3, examples=10, sampled=2)
    with pytest.raises(survey.DegenerateData, match=r"^class edge \(2\) is absent from the 2 "
                       r"sampled train images \(of 10\): "):
        survey.check_training_data(sampled, names)
    assert survey.fractions_line(sampled, names) == (
        "train labels (2 of 10 images): bg 50.0%, fg 50.0%, void 0.0%; absent: edge")


def test_clean_labels_pass_and_names_must_fit_the_classes():
    survey.check_training_data(made({0: 6, 1: 2, 255: 1}), NAMES)
    with pytest.raises(ValueError, match="1 class names for 2 classes"):
        survey.check_training_data(made({0: 6, 1: 2}), ["bg"])


def test_sample_order_spreads_the_first_picks_and_then_reads_the_rest():
    order = survey.sample_order(12, 4, seed=0)
    assert sorted(order.tolist()) == list(range(12))
    first = sorted(order[:4].tolist())
    assert [i // 3 for i in first] == [0, 1, 2, 3]  # one in each third of 12 / 4
    np.testing.assert_array_equal(order, survey.sample_order(12, 4, seed=0))
    assert survey.sample_order(3, 5, seed=0).tolist() == [0, 1, 2]


def test_a_large_split_is_sampled_and_the_rescan_finds_a_rare_class(tmp_path):
    rare = min(set(range(12)) - set(survey.sample_order(12, 4, seed=0)[:4].tolist()))
    labels = [[[0, 1], [2, 2]] if i == rare else [[0, 1], [0, 1]] for i in range(12)]
    folder = ImageFolder(str(write_raw(tmp_path, "train", labels)), "train")
    sampled = survey.survey(folder, 2, max_examples=4)  # every class in every image
    assert (sampled.sampled, sampled.complete) == (4, False)
    assert sampled.stored == {0: 8, 1: 8} and sampled.class_pixels.tolist() == [8, 8]
    found = survey.survey(folder, 3, max_examples=4)  # class 2 is only in image `rare`
    assert found.sampled > 4 and found.class_pixels[2] == 2
    assert found.sampled == found.pixels // 4  # each label has 4 pixels
    assert found.class_pixels.tolist() == [2 * found.sampled - 1] * 2 + [2]
    stopped = survey.survey(folder, 3, max_examples=4, max_seconds=0)
    assert (stopped.sampled, stopped.timed_out, stopped.complete) == (1, True, False)


def test_cli_on_a_raw_folder_prints_each_split_and_writes_the_sheet(tmp_path, capsys):
    root = tmp_path / "cells"
    write_raw(root, "train", [np.full((4, 6), 0), [[255] * 6] * 2 + [[0] * 6] * 2])
    write_raw(root, "val", [np.full((4, 6), 255)])
    out = tmp_path / "sheet.png"
    assert inspect.main([str(root), "--output", str(out), "--tile", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("no --label_values: the labels store values [0, 255], read "
                               "as classes 0 class 0, 1 class 1; to train on them set "
                               "--config.input.label_values='(0, 255)'")
    train = lines.index("train: 2 images, all read")
    assert lines[train + 1:train + 6] == [
        "  size (H x W): 4 x 6; image channels: 3",
        "  train labels (2 images): class 0 75.0%, class 1 25.0%, void 0.0%",
        "  median-frequency weights: class 0 0.67, class 1 2.00",  # median 1/2 of 3/4, 1/4
        "  stored values: 0 (75.0%), 255 (25.0%)",
        "  values that map to no class: none"]
    assert "val labels (1 image): class 1 100.0%, void 0.0%; absent: class 0" in "\n".join(lines)
    assert lines[-1] == f"contact sheet: {out} (2 train images beside their labels)"
    # width 6 + (30 + 6 + 30) + 6; height 6 + 2 rows of (14 + 20 + 6) + 3 legend lines of 14 + 6
    assert Image.open(out).size == (78, 134)


def test_cli_reports_values_the_given_label_values_drop(tmp_path, capsys):
    write_raw(tmp_path, "train", [[[0, 1], [1, 1]]])
    assert inspect.main([str(tmp_path), "--label_values", "(0,255)", "--classes", "isbi2012",
                         "--output", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "  values that map to no class: 1 (75.0%)\n" in out
    assert ("  problem: train labels store values [0, 1] but config.input.label_values = "
            "(0, 255) maps only 0 and 255 to classes: 1 becomes void") in out
    assert "train labels (1 image): membrane 25.0%, void 75.0%; absent: cell" in out


def test_cli_on_a_prepared_dataset(tmp_path, prepare, capsys):
    counts = (("train", 2), ("val", 1), ("test", 1))
    prepare("camvid", write_camvid(tmp_path / "CamVid", counts=counts))
    capsys.readouterr()  # what preparing printed
    out = tmp_path / "camvid.png"
    assert inspect.main(["camvid", "--tfds_data_dir", str(tmp_path / "tfds"), "--output", str(out),
                         "--tile", "12"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fcnjax.data.inspect: tfds dataset camvid/1.0.0 in ")
    assert lines[0].endswith("; splits train, val, test")
    assert lines[1].startswith("labels are class ids (255 void); classes: 0 sky, 1 building")
    train = lines.index("train: 2 images, all read")
    assert lines[train + 1] == "  size (H x W): 6 x 8; image channels: 3"
    # image 0: 0, 3, void, 0; image 1: 0, 3, void, 1 -> of 96 pixels 36 sky, 12 building ...
    assert lines[train + 2].startswith("  train labels (2 images): sky 37.5%, building 12.5%, "
                                       "road 25.0%, void 25.0%; absent: pole, pavement")
    # width 6 + (16 + 6 + 16) + 6; height 6 + 2 * (14 + 12 + 6) + 12 legend lines * 14 + 6
    assert Image.open(out).size == (50, 244)


@pytest.mark.parametrize("args, says", [
    (["{tmp}/missing"], "no dataset folder"),
    (["{tmp}/data", "--label_values", "(0,x)"], "bad --label_values '(0,x)'"),
    (["{tmp}/data", "--label_values", "(0,0)"], "label_values must be distinct"),
    (["camvid", "--tfds_data_dir", "{tmp}/tfds"], "tfds dataset 'camvid' is not prepared"),
    (["camvid", "--tfds_data_dir", "{tmp}/tfds", "--label_values", "(0,)"], "drop --label_values"),
])
def test_cli_user_mistakes_are_one_line(tmp_path, prepare, args, says):
    write_raw(tmp_path / "data", "train", [[[0, 1]]])
    if "drop --label_values" in says:
        counts = (("train", 1), ("val", 1), ("test", 1))
        prepare("camvid", write_camvid(tmp_path / "CamVid", counts=counts))
    argv = [a.format(tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as exit:
        inspect.main(argv + ["--output", str(tmp_path / "s.png")])
    message = exit.value.code  # a str: Python prints it to stderr and exits with status 1
    assert isinstance(message, str)
    assert message.startswith("fcnjax.data.inspect: error: ") and says in message
    assert "\n" not in message and not (tmp_path / "s.png").exists()


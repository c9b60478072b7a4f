"""One class table: builders, start-up line, reports and palettes read the same names."""

import numpy as np
import pytest

from fcnjax.data import classes
from fcnjax.data.builders import camvid, isbi2012, nyud, pascal_context, sift_flow, voc


def test_median_frequency_weights_by_hand():
    # frequencies 0.6, 0.3, 0.1 -> median 0.3 -> weights 0.5, 1, 3; an absent class weighs 0
    np.testing.assert_allclose(classes.median_frequency_weights([60, 30, 10, 0]),
                               [0.5, 1.0, 3.0, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        classes.median_frequency_weights([0, 0])


@pytest.mark.parametrize("builder, key", [
    (camvid.Camvid, "camvid"), (isbi2012.Isbi2012, "isbi2012"), (nyud.NyudV2, "nyud40"),
    (sift_flow.SiftFlow, "siftflow"), (pascal_context.PascalContext, "pascal_context"),
    (voc.VocSegmentation, "voc")])
def test_builders_store_the_names_reports_show(builder, key):
    """The names a prepared dataset carries are the names evaluate's table and the legends
    print for its class set (they had drifted: "sign_symbol" / "signsymbol")."""
    assert tuple(builder.CLASSES) == classes.CLASS_SETS[key]
    assert classes.class_names(key, len(builder.CLASSES)) == list(builder.CLASSES)
    assert classes.CLASS_SET_OF_DATASET[builder.name] == key


def test_names_pick_their_class_sets_colours():
    names = classes.class_names("camvid", 11)
    assert "sign_symbol" in names and "floor_mat" in classes.CLASS_SETS["nyud40"]
    np.testing.assert_array_equal(classes.class_colors(names, 11),
                                  classes.class_colors("camvid", 11))
    np.testing.assert_array_equal(classes.class_colors(("a", "b"), 2), classes.palette(2))
    assert classes.class_names(("facade", "window"), 3) == ["facade", "window", "class 2"]


def test_a_prepared_datasets_own_names_reach_the_reports(tmp_path, prepare):
    """--folder.classes names: evaluate's table, the class-IoU chart and predict's legend read
    them through pipeline.class_names (they said "class 0" ... before)."""
    from configs import sample
    from fakes import write_user_folder
    from fcnjax.data import pipeline
    from fcnjax.data.builders import folder

    root = write_user_folder(tmp_path / "facades")
    prepare(folder.SegmentationFolder, root,
            config=folder.FolderConfig(name="facades", classes="background,facade,window"))
    config = sample.get_config()
    config.model.num_classes = 3
    config.input.update(source="tfds", tfds_name="segmentation_folder/facades",
                        tfds_data_dir=str(tmp_path / "tfds"), label_values=(),
                        train_ids="", eval_ids="")
    assert pipeline.class_names(config) == ["background", "facade", "window"]
    config.input.tfds_data_dir = str(tmp_path / "elsewhere")  # predict needs no dataset
    assert pipeline.class_names(config) == ["membrane", "cell", "class 2"]


def test_class_names_and_colours_per_dataset():
    assert classes.class_names("camvid", 12)[-2:] == ["bicyclist", "class 11"]
    np.testing.assert_array_equal(classes.class_colors("camvid", 2), [[128, 128, 128],
                                                                      [128, 0, 0]])
    np.testing.assert_array_equal(classes.class_colors("voc", 2), classes.palette(2))
    assert len(classes.CLASS_SETS["voc"]) == 21
    assert len(classes.CLASS_SETS["nyud40"]) == 40
    assert len(classes.CLASS_SETS["siftflow"]) == 33

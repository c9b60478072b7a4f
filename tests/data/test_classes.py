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

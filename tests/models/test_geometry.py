"""Crop offsets, receptive fields and output sizes derived by fcnjax.coord_map."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import pytest

from fcnjax import models
from fcnjax.models import coord_map
from fcnjax.models import alexnet, googlenet, plan_head, vgg16

FCN_NAMES = ["fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce", "fcn_alexnet", "fcn_googlenet"]


@pytest.mark.parametrize("skips, offsets", [
    ((), {"score": 19}),
    (("pool4",), {"score_pool4c": 5, "score": 27}),
    (("pool4", "pool3"), {"score_pool4c": 5, "score_pool3c": 9, "score": 31}),
])
def test_vgg16_offsets_match_caffe_reference(skips, offsets):
    assert plan_head(vgg16(), skips).crop_offsets == offsets


def test_upsampling_kernels_follow_the_geometry():
    assert [f.kernel for f in plan_head(vgg16(), ("pool4", "pool3")).fusions] == [4, 4]
    assert plan_head(vgg16(), ("pool4", "pool3")).kernel == 16
    assert plan_head(vgg16()).kernel == 64
    alex = plan_head(alexnet())
    assert (alex.kernel, alex.stride, alex.offset) == (63, 32, 18)


@pytest.mark.parametrize("backbone, field, stride", [
    (vgg16(), 404, 32), (alexnet(), 355, 32), (googlenet(), 907, 32)])
def test_receptive_fields_match_paper_table1(backbone, field, stride):
    g = backbone.geometries()[backbone.output]
    assert (g.field, g.scale) == (field, stride)


def test_geometry_composes_like_caffe_coord_map():
    # conv1_1 pad 100 puts cell 0 at pixel -99; five 2x2 pools add 0.5 * (1+2+4+8+16).
    pool5 = vgg16().geometries()["pool5"]
    assert (pool5.scale, pool5.offset) == (32, Fraction(-99) + Fraction(31, 2))
    up = coord_map.Geometry(Fraction(32), Fraction(25, 2)).deconv(64, 32)
    assert (up.scale, up.offset) == (1, -19)


def test_crop_offset_rejects_misaligned_or_negative_crops():
    with pytest.raises(ValueError, match="not a non-negative integer"):
        coord_map.crop_offset(coord_map.Geometry(offset=Fraction(1, 2)), coord_map.IMAGE)
    with pytest.raises(ValueError, match="not a non-negative integer"):
        coord_map.crop_offset(coord_map.Geometry(offset=Fraction(3)), coord_map.IMAGE)
    with pytest.raises(ValueError, match="stride"):
        coord_map.crop_offset(coord_map.Geometry(scale=Fraction(2)), coord_map.IMAGE)


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (5, 2, 2, 3), (4, 2, 2, 2), (1, 2, 2, 1), (7, 3, 2, 3), (8, 3, 2, 4), (1, 3, 2, 0)])
def test_pool_size_rounds_up_like_caffe(size, kernel, stride, expected):
    assert coord_map.pool_size(size, kernel, stride) == expected


@pytest.mark.parametrize("name", FCN_NAMES)
def test_every_size_from_1_to_600_is_covered(name):
    """Pure geometry: the score map exists and the upsampled map covers offset + size."""
    model = models.build({"name": name})
    plan, backbone = model.plan(), model.backbone
    for size in range(1, 601):
        coarse = backbone.sizes(size)[backbone.output]
        assert coarse >= 1, size
        for fusion in plan.fusions:
            up = coord_map.deconv_size(coarse, fusion.kernel, fusion.stride)
            assert backbone.sizes(size)[fusion.layer] >= fusion.offset + up, size
            coarse = up
        assert coord_map.deconv_size(coarse, plan.kernel, plan.stride) >= plan.offset + size


SIZES = [(1, 1), (2, 3), (7, 16), (31, 32), (33, 65), (100, 99), (224, 225), (311, 500),
         (599, 600)]


@pytest.mark.parametrize("name", FCN_NAMES)
def test_output_has_the_input_size(name):
    """The traced module (jax.eval_shape: no arithmetic) for odd and even sizes up to 600."""
    model = models.build({"name": name})
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
    for h, w in SIZES:
        out = jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct((2, h, w, 3), jnp.float32))
        assert out.shape == (2, h, w, 21) and out.dtype == jnp.float32

"""FCN model family: skips, at-once scales, fusion variants, precision, dropout, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnjax import models
from fcnjax.models.layers import count_params, randomize

IMAGE = jax.random.normal(jax.random.key(42), (1, 19, 24, 3)) * 50


def init_random(model, image, seed=0):
    return randomize(jax.eval_shape(model.init, jax.random.key(0), image)["params"], seed)


def rel_err(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def test_score_layers_start_at_zero_and_trunk_at_random():
    model = models.fcn8s()
    params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert not np.any(params[name]["kernel"]) and not np.any(params[name]["bias"])
    assert float(jnp.std(params["trunk"]["conv1_1"]["kernel"])) > 0
    assert "upscore8" not in params  # fixed bilinear: a constant, not a parameter


def test_fcn32s_has_the_paper_parameter_count():
    variables = jax.eval_shape(models.fcn32s().init, jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
    vgg_convs = sum(9 * a * b + b for a, b in [(3, 64), (64, 64), (64, 128), (128, 128),
                                                (128, 256), (256, 256), (256, 256), (256, 512),
                                                (512, 512), (512, 512), (512, 512), (512, 512),
                                                (512, 512)])
    fc = 49 * 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 21 + 21
    assert count_params(variables["params"]) == vgg_convs + fc


def test_at_once_scales_equal_prescaled_score_weights():
    """score_pool4(0.01 * pool4) == (0.01 * score_pool4 kernel)(pool4): same net either way."""
    params = init_random(models.fcn8s_atonce(), IMAGE)
    scaled = jax.tree_util.tree_map(lambda x: x, params)
    scaled["score_pool4"] = dict(params["score_pool4"], kernel=params["score_pool4"]["kernel"] * 0.01)
    scaled["score_pool3"] = dict(params["score_pool3"], kernel=params["score_pool3"]["kernel"] * 1e-4)
    at_once = models.fcn8s_atonce().apply({"params": params}, IMAGE)
    plain = models.fcn8s().apply({"params": scaled}, IMAGE)
    assert rel_err(at_once, plain) < 1e-5


def test_late_fusion_of_two_equal_streams_equals_one_stream():
    single = models.fcn32s(num_classes=5)
    params = init_random(single, IMAGE)
    fused = models.nyud_late_fusion(num_classes=5)
    fused_params = {"color": params["trunk"], "hha": params["trunk"],
                    "score_fr_color": params["score_fr"], "score_fr_hha": params["score_fr"]}
    expected = single.apply({"params": params}, IMAGE)
    got = fused.apply({"params": fused_params}, {"color": IMAGE, "hha": IMAGE})
    assert rel_err(got, expected) < 1e-5


def test_late_fusion_rejects_mismatched_streams():
    fused = models.nyud_late_fusion()
    with pytest.raises(ValueError, match="expected inputs"):
        fused.init(jax.random.key(0), {"color": IMAGE})
    with pytest.raises(ValueError, match="one height and width"):
        fused.init(jax.random.key(0), {"color": IMAGE, "hha": IMAGE[:, :10]})


def test_early_fusion_takes_four_channels():
    rgbd = jnp.concatenate([IMAGE, IMAGE[..., :1]], axis=-1)
    model = models.nyud_early_fusion()
    variables = jax.eval_shape(model.init, jax.random.key(0), rgbd)
    assert variables["params"]["trunk"]["conv1_1"]["kernel"].shape == (3, 3, 4, 64)
    assert jax.eval_shape(model.apply, variables, rgbd).shape == (1, 19, 24, 40)


def test_siftflow_heads_each_equal_an_fcn16s():
    multi = models.siftflow_fcn16s()
    params = init_random(multi, IMAGE)
    out = multi.apply({"params": params}, IMAGE)
    assert out["sem"].shape == (1, 19, 24, 33) and out["geo"].shape == (1, 19, 24, 3)
    geo = {"trunk": params["trunk"], "score_fr": params["score_fr_geo"],
           "score_pool4": params["score_pool4_geo"]}
    assert rel_err(out["geo"], models.fcn16s(num_classes=3).apply({"params": geo}, IMAGE)) < 1e-5


def test_bfloat16_compute_keeps_float32_params_and_output():
    model32, model16 = models.fcn16s(), models.fcn16s(dtype=jnp.bfloat16)
    params = init_random(model32, IMAGE)
    v16 = model16.init(jax.random.key(0), IMAGE)
    assert {x.dtype for x in jax.tree_util.tree_leaves(v16)} == {jnp.dtype(jnp.float32)}
    out16 = model16.apply({"params": params}, IMAGE)
    assert out16.dtype == jnp.float32
    assert rel_err(out16, model32.apply({"params": params}, IMAGE)) < 0.05


def test_dropout_only_in_training_and_keyed():
    model = models.fcn_alexnet()
    params = init_random(model, IMAGE)
    ev = [model.apply({"params": params}, IMAGE) for _ in range(2)]
    np.testing.assert_array_equal(ev[0], ev[1])
    train = [model.apply({"params": params}, IMAGE, train=True, rngs={"dropout": jax.random.key(k)})
             for k in (1, 2)]
    assert rel_err(train[0], train[1]) > 1e-3 and rel_err(train[0], ev[0]) > 1e-3


def test_learnable_upsampling_starts_equal_to_fixed():
    fixed, learn = models.fcn16s(), models.fcn16s(learnable_upsampling=True)
    params = init_random(fixed, IMAGE)
    learn_params = learn.init(jax.random.key(0), IMAGE)["params"]
    assert set(learn_params) - set(params) == {"upscore2", "upscore16"}
    learn_params = {**learn_params, **params}
    assert rel_err(learn.apply({"params": learn_params}, IMAGE),
                   fixed.apply({"params": params}, IMAGE)) < 1e-5


def test_unbatched_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, H, W, C\), got shape \(19, 24, 3\)"):
        models.fcn32s().init(jax.random.key(0), IMAGE[0])


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(ValueError, match="fcn8s"):
        models.build({"name": "fcn4s"})


@pytest.mark.parametrize("name", ["fcn8s", "fcn_alexnet", "fcn_googlenet", "siftflow_fcn16s"])
def test_fcns_trace_with_symbolic_batch_height_and_width(name):
    """jax.export of any image size: no Python branch of the heads needs the sizes' numbers."""
    from jax import export

    model = models.MODELS[name]()
    params = jax.eval_shape(model.init, jax.random.key(0), IMAGE)["params"]
    b, h, w = export.symbolic_shape("b, h, w")
    exported = export.export(jax.jit(lambda p, x: model.apply({"params": p}, x)),
                             platforms=("cpu",))(params, jax.ShapeDtypeStruct((b, h, w, 3),
                                                                              jnp.float32))
    assert all(out.shape[:3] == (b, h, w) for out in exported.out_avals)

"""U-Net: the paper's shapes and counts, derived crops, any-size "same" net, a numpy reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from fcnjax import models
from fcnjax.models import coord_map
from fcnjax.models import layers
from fcnjax.models.unet import UNet, unet_geometry

PAPER_WIDTHS = (64, 128, 256, 512, 1024)


def shape_of(model, *shape):
    """Logits shape of ``model`` for an input of ``shape``, without computing anything."""
    image = jax.ShapeDtypeStruct(shape, jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), image)
    return jax.eval_shape(model.apply, variables, image).shape


def random_params(model, shape, seed=0, scale=0.5):
    """Every parameter, biases included, drawn N(0, scale^2): no zero-initialised layer hides."""
    image = jax.ShapeDtypeStruct(shape, jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), image)["params"]
    rng = np.random.default_rng(seed)  # seeded numpy: no per-shape compile of eager jax.random
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(scale * rng.standard_normal(x.shape), jnp.float32), params)


def forward(model, params, image, **kwargs):
    """Compiled ``model.apply``: one compile beats hundreds of eager op dispatches on CPU."""
    return jax.jit(functools.partial(model.apply, **kwargs))({"params": params}, image)


def paper_param_count(in_channels=1, classes=2, up_kernel=2):
    """The paper's net counted by hand from its widths: convs are k*k*C_in*C_out + C_out."""
    def conv(k, c_in, c_out):
        return k * k * c_in * c_out + c_out
    total, c_in = 0, in_channels
    for width in PAPER_WIDTHS:  # four levels and the bottom: two 3x3 convs each
        total += conv(3, c_in, width) + conv(3, width, width)
        c_in = width
    for width in PAPER_WIDTHS[-2::-1]:  # up-sampling halves; the first conv reads the concat
        total += conv(up_kernel, 2 * width, width) + conv(3, 2 * width, width)
        total += conv(3, width, width)
    return total + conv(1, PAPER_WIDTHS[0], classes)


def test_paper_unet_maps_572_to_388_with_31m_params():
    model = UNet()
    image = jax.ShapeDtypeStruct((1, 572, 572, 1), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), image)["params"]
    assert shape_of(model, 1, 572, 572, 1) == (1, 388, 388, 2)
    assert layers.count_params(params) == paper_param_count() == 31_030_658


def test_paper_unet_has_23_learned_conv_layers():
    for upsampling in ("transpose", "bilinear"):
        model = UNet(features=4, upsampling=upsampling)
        params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 188, 188, 1)))
        kernels = [k for k in jax.tree_util.tree_leaves(params) if k.ndim == 4]
        assert len(kernels) == model.geometry().conv_layers == 23


def test_bilinear_unet_swaps_up_convs_for_1x1_convs():
    model = UNet(upsampling="bilinear")
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 572, 572, 1)))
    assert layers.count_params(params) == paper_param_count(up_kernel=1)
    assert params["params"]["up4"]["kernel"].shape == (1, 1, 1024, 512)
    assert shape_of(model, 1, 572, 572, 1) == (1, 388, 388, 2)


def test_parameter_names_read_like_the_paper():
    model = UNet(features=4, levels=2, padding="same")
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    assert sorted(params) == sorted(
        ["down1_conv1", "down1_conv2", "down2_conv1", "down2_conv2", "bottom_conv1",
         "bottom_conv2", "up2", "up2_conv1", "up2_conv2", "up1", "up1_conv1", "up1_conv2",
         "score"])
    assert params["up2"]["kernel"].shape == (2, 2, 16, 8)
    assert params["up2_conv1"]["kernel"].shape == (3, 3, 16, 8)  # skip (8) + up (8)


def test_valid_crop_offsets_match_the_papers_figure():
    # Fig. 1: skip maps 568, 280, 136, 64 are cropped to the up-sampled 392, 200, 104, 56.
    skips, ups = (568, 280, 136, 64), (392, 200, 104, 56)
    paper = {f"crop{level}": (s - u) // 2 for level, (s, u) in enumerate(zip(skips, ups), 1)}
    assert unet_geometry().crop_offsets == paper == {"crop1": 88, "crop2": 40, "crop3": 16,
                                                     "crop4": 4}
    assert unet_geometry().output.offset == (572 - 388) // 2
    for upsampling in ("transpose", "bilinear"):
        same = unet_geometry(padding="same", upsampling=upsampling)
        assert same.crop_offsets == {f"crop{level}": 0 for level in range(1, 5)}
        assert same.output.offset == 0


@pytest.mark.parametrize("levels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_receptive_field_and_stride_match_hand_computation(levels, upsampling):
    # At stride 2^(l-1): two 3x3 convs add 4 * 2^(l-1) each way, the pool 2^(l-1); the bottom
    # adds 4 * 2^L; a bilinear x2 from stride 2^l sees one more coarse cell, 2^l pixels.
    down = sum(5 * 2 ** (l - 1) for l in range(1, levels + 1))
    up = sum(4 * 2 ** (l - 1) for l in range(1, levels + 1))
    bilinear = sum(2 ** l for l in range(1, levels + 1)) if upsampling == "bilinear" else 0
    geometry = unet_geometry(levels, "valid", upsampling)
    assert geometry.receptive_field == 1 + down + 4 * 2 ** levels + up + bilinear
    assert geometry.max_stride == 2 ** levels
    assert geometry.conv_layers == 5 * levels + 3


def test_receptive_field_is_the_connectivity_of_a_small_net(monkeypatch):
    # With positive weights and an average pool in place of max (same windows, no argmax),
    # every input pixel wired to an output pixel has a nonzero derivative.
    def average_pool(x, kernel, stride, pad=0):
        x = jnp.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0)))
        return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    monkeypatch.setattr(layers, "max_pool", average_pool)
    model = UNet(features=1, levels=2)
    params = jax.tree_util.tree_map(jnp.abs, random_params(model, (1, 64, 44, 1)))
    rows = jax.jit(jax.jacrev(lambda x: model.apply({"params": params}, x)[0, :, 0, 0]))(
        jnp.ones((1, 64, 44, 1)))
    seen = np.asarray(jnp.abs(rows).sum(axis=(1, 3, 4)) > 0)  # (output row, input row)
    geometry = model.geometry()
    for j, row in enumerate(seen):
        first, last = np.flatnonzero(row)[[0, -1]]
        assert last - first + 1 == geometry.receptive_field == 44
        assert first <= geometry.output.offset + j <= last


def test_valid_sizes_follow_the_pooling_rule():
    geometry = unet_geometry()
    for n in range(1, 700):
        fits = n >= 188 and n % 16 == 12  # every pooled map even, the bottom large enough
        if fits:
            assert geometry.output_size(n) == n - 184
        else:
            with pytest.raises(ValueError):
                geometry.output_size(n)
    assert geometry.smallest_input == 188


@pytest.mark.parametrize("shape, expected", [
    ((1, 573, 573, 1), "573-pixel input side.*nearest valid sizes: 572 and 588"),
    ((1, 572, 590, 1), "590-pixel input side.*nearest valid sizes: 588 and 604"),
    ((1, 100, 100, 1), "100-pixel input side.*smallest valid size is 188"),
])
def test_unfitting_valid_input_names_nearest_sizes(shape, expected):
    with pytest.raises(ValueError, match=expected):
        shape_of(UNet(), *shape)


def test_non_batched_input_is_rejected_with_its_shape():
    with pytest.raises(ValueError, match=r"\(572, 572, 1\)"):
        shape_of(UNet(), 572, 572, 1)


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match="padding"):
        unet_geometry(padding="reflect")
    with pytest.raises(ValueError, match="upsampling"):
        unet_geometry(upsampling="nearest")


def test_same_geometry_keeps_every_size():
    for upsampling in ("transpose", "bilinear"):
        geometry = unet_geometry(padding="same", upsampling=upsampling)
        assert [geometry.output_size(n) for n in range(1, 300)] == list(range(1, 300))


@pytest.mark.parametrize("start", [1, 2])
def test_same_padding_output_size_equals_input_size(start):
    model = UNet(features=2, padding="same")
    for h in range(start, 66, 2):  # with w = 131 - h: every side from 1 to 130
        assert shape_of(model, 1, h, 131 - h, 1) == (1, h, 131 - h, 2)


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_same_padding_forward_on_odd_and_even_sizes(upsampling):
    model = UNet(num_classes=3, features=4, padding="same", upsampling=upsampling)
    params = random_params(model, (1, 16, 16, 3))
    for h, w in [(33, 30), (1, 6)]:  # 33 -> 17 -> 9 -> 5 -> 3; 30 -> 15 -> 8 -> 4 -> 2
        image = jax.random.normal(jax.random.key(h * w), (2, h, w, 3))
        logits = forward(model, params, image)
        assert logits.shape == (2, h, w, 3) and logits.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(logits)))


def test_bilinear_upsampling_puts_cells_where_coord_map_says():
    # A ramp equal to each cell's position must come out as the upsampled cells' positions.
    geometry = unet_geometry(levels=1, upsampling="bilinear")
    ramp = jnp.broadcast_to(jnp.arange(8.0)[None, :, None, None], (1, 8, 8, 1))
    up = layers.Upscore(4, 2).apply({}, ramp, geometry.up_crop, (16, 16))[0, :, 8, 0]
    grid = coord_map.IMAGE.deconv(2, 2)
    positions = np.asarray([float(grid.offset + grid.scale * j) for j in range(16)])
    np.testing.assert_allclose(up[1:-1], positions[1:-1], atol=1e-6)
    constant = layers.Upscore(4, 2).apply({}, jnp.full((1, 5, 5, 2), 3.0), geometry.up_crop,
                                          (10, 10))
    np.testing.assert_allclose(constant[:, 1:-1, 1:-1], 3.0, rtol=1e-6)


def reference_unet(params, image, levels, pad, upsampling):
    """The U-Net recomputed in float64 numpy, from the paper's description alone."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)

    def conv_relu(x, name, pad):
        k = p[name]["kernel"]
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        windows = sliding_window_view(x, k.shape[:2], axis=(1, 2))  # (B, h, w, C, kh, kw)
        return np.maximum(np.einsum("bhwcij,ijcd->bhwd", windows, k) + p[name]["bias"], 0)

    def pool(x):  # 2x2 max, an odd last row or column pooled on its own
        b, h, w, c = x.shape
        x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-np.inf)
        return x.reshape(b, (h + 1) // 2, 2, (w + 1) // 2, 2, c).max(axis=(2, 4))

    def up_conv(x, name):  # output (2i + a, 2j + b) = x[i, j] @ kernel[a, b]
        y = np.einsum("bhwc,ijcd->bhiwjd", x, p[name]["kernel"])
        b, h, _, w, _, d = y.shape
        return np.maximum(y.reshape(b, 2 * h, 2 * w, d) + p[name]["bias"], 0)

    def bilinear(x):  # cell 2i = 3/4 x[i] + 1/4 x[i-1], 2i+1 = 3/4 x[i] + 1/4 x[i+1]; zero outside
        for axis in (1, 2):
            z = np.moveaxis(x, axis, 0)
            padded = np.pad(z, [(1, 1)] + [(0, 0)] * (z.ndim - 1))
            pair = np.stack([0.75 * z + 0.25 * padded[:-2], 0.75 * z + 0.25 * padded[2:]], 1)
            x = np.moveaxis(pair.reshape(-1, *z.shape[1:]), 0, axis)
        return x

    def concat(skip, up):  # centre-crop the larger skip; or cut the up-sampled map to the skip
        (sh, sw), (uh, uw) = skip.shape[1:3], up.shape[1:3]
        if sh >= uh:
            top, left = (sh - uh) // 2, (sw - uw) // 2
            return np.concatenate([skip[:, top:top + uh, left:left + uw], up], -1)
        return np.concatenate([skip, up[:, :sh, :sw]], -1)

    x, skips = np.asarray(image, np.float64), []
    for level in range(1, levels + 1):
        x = conv_relu(conv_relu(x, f"down{level}_conv1", pad), f"down{level}_conv2", pad)
        skips.append(x)
        x = pool(x)
    x = conv_relu(conv_relu(x, "bottom_conv1", pad), "bottom_conv2", pad)
    for level in range(levels, 0, -1):
        name = f"up{level}"
        x = up_conv(x, name) if upsampling == "transpose" else conv_relu(bilinear(x), name, 0)
        x = concat(skips[level - 1], x)
        x = conv_relu(conv_relu(x, f"{name}_conv1", pad), f"{name}_conv2", pad)
    k = p["score"]["kernel"]
    return np.einsum("bhwc,cd->bhwd", x, k[0, 0]) + p["score"]["bias"]


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("padding, shape", [("valid", (2, 52, 56, 3)),
                                            ("same", (2, 13, 10, 3))])
def test_unet_matches_numpy_reference(padding, shape, upsampling):
    model = UNet(num_classes=3, features=2, levels=2, padding=padding, upsampling=upsampling)
    params = random_params(model, shape)
    image = jax.random.normal(jax.random.key(7), shape)
    logits = forward(model, params, image)
    expected = reference_unet(params, image, 2, {"valid": 0, "same": 1}[padding], upsampling)
    assert logits.shape == expected.shape
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_bfloat16_compute_keeps_float32_params_and_logits():
    model = UNet(features=4, levels=2, padding="same", dtype=jnp.bfloat16)
    image = jax.random.normal(jax.random.key(0), (1, 12, 12, 1))
    variables = jax.eval_shape(model.init, jax.random.key(1), image)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables))
    params = random_params(model, (1, 12, 12, 1))
    low = forward(model, params, image)
    full = forward(UNet(features=4, levels=2, padding="same"), params, image)
    assert low.dtype == jnp.float32
    np.testing.assert_allclose(low, full, atol=0.1 * float(jnp.abs(full).max()))


def test_dropout_only_when_training():
    model = UNet(features=4, levels=1, padding="same")
    image = jax.random.normal(jax.random.key(0), (1, 8, 8, 1))
    params = random_params(model, (1, 8, 8, 1))
    rngs = {"dropout": jax.random.key(3)}
    test = forward(model, params, image)
    np.testing.assert_array_equal(test, forward(model, params, image))
    assert not np.allclose(forward(model, params, image, train=True, rngs=rngs), test)
    no_dropout = UNet(features=4, levels=1, padding="same", dropout=0.0)
    np.testing.assert_array_equal(forward(no_dropout, params, image, train=True, rngs=rngs),
                                  test)


def test_built_by_name_from_a_config():
    model = models.build({"name": "unet", "features": 4, "levels": 1, "padding": "same",
                          "dtype": "bfloat16"})
    assert isinstance(model, UNet) and model.dtype == jnp.bfloat16
    assert shape_of(model, 1, 9, 9, 1) == (1, 9, 9, 2)

"""Caffe-semantics layers against PyTorch (ceil-mode pools, LRN, deconvolution) and by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnjax.models import layers

torch = pytest.importorskip("torch")


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def to_torch(x):  # NHWC -> NCHW
    return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


def from_torch(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def test_bilinear_filter_matches_the_paper_formula():
    np.testing.assert_allclose(layers.bilinear_filter(4), [0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(layers.bilinear_filter(3), [0.5, 1.0, 0.5])
    k = layers.bilinear_kernel(4, 3)
    assert k.shape == (4, 4, 3, 3)
    assert np.all(k[:, :, 0, 1] == 0) and np.allclose(k[:, :, 2, 2], np.outer(*[[.25, .75, .75, .25]] * 2))


@pytest.mark.parametrize("size, kernel, stride", [(5, 2, 2), (6, 2, 2), (7, 3, 2), (1, 2, 2),
                                                  (10, 3, 2)])
def test_ceil_max_pool_parity_with_pytorch(size, kernel, stride):
    x = np.random.default_rng(0).normal(size=(2, size, size + 1, 3)).astype(np.float32)
    ours = layers.max_pool(jnp.asarray(x), kernel, stride)
    ref = torch.nn.functional.max_pool2d(to_torch(x), kernel, stride, ceil_mode=True)
    np.testing.assert_array_equal(ours, from_torch(ref))


@pytest.mark.parametrize("size", [5, 6, 175])
def test_tiling_max_pool_gradient_matches_pytorch(size):
    """kernel = stride pools run as reshape + max: same values and, without ties, the same
    gradient as PyTorch's ceil-mode pool (odd sizes pad the last window)."""
    x = np.random.default_rng(1).normal(size=(2, size, size + 1, 3)).astype(np.float32)
    g = np.random.default_rng(2).normal(size=(2, -(-size // 2), -(-(size + 1) // 2), 3))
    ours = jax.grad(lambda v: jnp.vdot(layers.max_pool(v, 2, 2), g))(jnp.asarray(x))
    t = to_torch(x).requires_grad_()
    torch.nn.functional.max_pool2d(t, 2, 2, ceil_mode=True).backward(to_torch(g.astype(np.float32)))
    np.testing.assert_allclose(ours, from_torch(t.grad), rtol=1e-6)


@pytest.mark.parametrize("kernel, pad", [(3, 100), (11, 100), (7, 114), (3, 1), (1, 0)])
def test_split_padding_keeps_the_convolution(kernel, pad):
    """A conv padded apart (outer zeros, then its own inner pad) equals the padded conv."""
    outer, inner = layers.split_padding(kernel, pad)
    assert outer + inner == pad and inner <= (kernel - 1) // 2
    x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 9, 8, 2)).astype(np.float32))
    w = jnp.asarray(np.random.default_rng(4).normal(size=(kernel, kernel, 2, 3)).astype(np.float32))
    conv = lambda v, p: jax.lax.conv_general_dilated(v, w, (2, 2), [(p, p)] * 2,
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv(layers.pad_input(x, outer), inner), conv(x, pad),
                               rtol=1e-5, atol=1e-5)


def test_max_pool_with_padding_keeps_size_like_inception():
    x = np.random.default_rng(1).normal(size=(1, 9, 8, 2)).astype(np.float32)
    ours = layers.max_pool(jnp.asarray(x), 3, 1, pad=1)
    ref = torch.nn.functional.max_pool2d(to_torch(x), 3, 1, padding=1, ceil_mode=True)
    np.testing.assert_array_equal(ours, from_torch(ref))


def test_max_pool_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        layers.max_pool(jnp.ones((1, 1, 1, 1)), 3, 2)


def test_lrn_parity_with_pytorch():
    x = np.random.default_rng(2).normal(size=(2, 5, 4, 11)).astype(np.float32) * 30
    ours = layers.local_response_norm(jnp.asarray(x))
    ref = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)(to_torch(x))
    assert rel_err(ours, from_torch(ref)) < 1e-6


@pytest.mark.parametrize("kernel, stride", [(4, 2), (5, 3), (63, 32), (2, 2), (3, 3)])
def test_transposed_conv_parity_with_pytorch(kernel, stride):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    w = rng.normal(size=(5, 6, kernel, kernel)).astype(np.float32)  # torch (in, out, kh, kw)
    ours = layers.transposed_conv(jnp.asarray(x), jnp.asarray(w.transpose(2, 3, 0, 1)), stride)
    ref = torch.nn.functional.conv_transpose2d(to_torch(x), torch.from_numpy(w), stride=stride)
    assert rel_err(ours, from_torch(ref)) < 1e-5


@pytest.mark.parametrize("k", [2, 3])
def test_depth_to_space_conv_equals_the_dilated_convolution_forward_and_gradients(k):
    """U-Net's up-conv as one product + depth-to-space: same values and gradients as the
    general transposed convolution (a convolution of the k-dilated input)."""
    x = jax.random.normal(jax.random.key(1), (2, 5, 7, 6))
    kernel = jax.random.normal(jax.random.key(2), (k, k, 6, 4))
    cotangent = jax.random.normal(jax.random.key(3), (2, 5 * k, 7 * k, 4))

    def dilated(x, kernel):
        return jax.lax.conv_general_dilated(
            x, kernel[::-1, ::-1], (1, 1), ((k - 1, k - 1), (k - 1, k - 1)),
            lhs_dilation=(k, k), dimension_numbers=("NHWC", "HWIO", "NHWC"))

    ours, ours_vjp = jax.vjp(layers.depth_to_space_conv, x, kernel)
    ref, ref_vjp = jax.vjp(dilated, x, kernel)
    assert ours.shape == ref.shape == (2, 5 * k, 7 * k, 4)
    assert rel_err(ours, ref) < 1e-6
    for got, want in zip(ours_vjp(cotangent), ref_vjp(cotangent)):
        assert rel_err(got, want) < 1e-6


@pytest.mark.parametrize("kernel, stride, offset, size", [
    (4, 2, 0, None), (4, 2, 1, (6, 8)), (64, 32, 19, (40, 33)), (63, 32, 18, (50, 30))])
def test_fixed_upscore_equals_the_bilinear_deconvolution_and_its_crop(kernel, stride, offset, size):
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5))
    up = layers.Upscore(kernel, stride)
    ours = up.apply({}, x, offset, size)
    full = layers.transposed_conv(x, jnp.asarray(layers.bilinear_kernel(kernel, 5)), stride)
    ref = full[:, offset:, offset:] if size is None else layers.crop(full, offset, size)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-6


def test_learnable_upscore_starts_bilinear_and_has_a_kernel():
    x = jax.random.normal(jax.random.key(1), (1, 5, 6, 4))
    up = layers.Upscore(4, 2, learnable=True)
    variables = up.init(jax.random.key(2), x)
    assert variables["params"]["kernel"].shape == (4, 4, 4, 4)
    fixed = layers.Upscore(4, 2).apply({}, x)
    assert rel_err(up.apply(variables, x), fixed) < 1e-6


def test_bilinear_upsampling_keeps_a_constant_image_constant_inside():
    x = jnp.full((1, 6, 6, 2), 3.0)
    y = layers.Upscore(4, 2).apply({}, x, 1, (12, 12))  # Caffe's x2: kernel 4, crop 1
    np.testing.assert_allclose(y[:, 1:-1, 1:-1], 3.0, rtol=1e-6)


def test_crop_names_the_sizes_when_it_cannot_crop():
    with pytest.raises(ValueError, match="cannot crop 5x5 at offset 3 from a 6x6 map"):
        layers.crop(jnp.ones((1, 6, 6, 1)), 3, (5, 5))


def test_randomize_gives_nonzero_leaves_with_same_structure():
    params = {"a": {"kernel": jnp.zeros((3, 3, 4, 8)), "bias": jnp.zeros((8,))}}
    drawn = layers.randomize(params, 0, bias_std=0.1)
    assert jax.tree_util.tree_structure(drawn) == jax.tree_util.tree_structure(params)
    assert float(jnp.std(drawn["a"]["kernel"])) == pytest.approx((2 / 36) ** 0.5, rel=0.2)
    assert float(jnp.abs(drawn["a"]["bias"]).sum()) > 0


@pytest.mark.parametrize("kernel, size", [(7, (9, 12)), (1, (3, 2)), (6, (6, 6))])
def test_fully_connected_conv_equals_the_valid_convolution(kernel, size):
    import flax.linen as nn
    x = jax.random.normal(jax.random.key(0), (2, *size, 5))
    fc = layers.FullyConnectedConv(7, kernel)
    variables = layers.randomize(fc.init(jax.random.key(1), x), 2)
    reference = nn.Conv(7, (kernel, kernel), padding="VALID").apply(variables, x)
    assert rel_err(fc.apply(variables, x), reference) < 1e-5


def test_fully_connected_conv_too_small_map_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a map at least 7x7, got 6x9"):
        layers.FullyConnectedConv(4, 7).init(jax.random.key(0), jnp.ones((1, 6, 9, 2)))


@pytest.mark.parametrize("batch, side, c_in, c_out", [(1, 3, 128, 128), (1, 4, 160, 128)])
def test_small_map_conv_equals_xla_forward_and_gradients(batch, side, c_in, c_out):
    """The per-tap input gradient used for wide kernels on small maps (U-Net's bottom on the
    CPU) gives XLA's convolution, input gradient and kernel gradient."""
    x = jax.random.normal(jax.random.key(4), (batch, side, side, c_in))
    kernel = jax.random.normal(jax.random.key(5), (3, 3, c_in, c_out))
    assert layers.wide_kernel_on_small_map(x.shape, kernel.shape)

    def plain(x, kernel):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    ours, ours_vjp = jax.vjp(lambda x, k: layers.conv_general_dilated(
        x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")), x, kernel)
    ref, ref_vjp = jax.vjp(plain, x, kernel)
    cotangent = jax.random.normal(jax.random.key(6), ref.shape)
    assert rel_err(ours, ref) < 1e-6
    for got, want in zip(ours_vjp(cotangent), ref_vjp(cotangent)):
        assert rel_err(got, want) < 1e-6


def test_small_map_rule_keeps_large_maps_and_narrow_kernels_on_xla():
    assert layers.wide_kernel_on_small_map((1, 10, 10, 1024), (3, 3, 1024, 1024))
    assert layers.wide_kernel_on_small_map((4, 16, 16, 1024), (3, 3, 1024, 1024))
    assert not layers.wide_kernel_on_small_map((1, 30, 30, 1024), (3, 3, 1024, 512))
    assert not layers.wide_kernel_on_small_map((1, 252, 252, 64), (3, 3, 64, 64))


@pytest.mark.parametrize("size, kernel, stride, start, length",
                         [(3, 4, 2, 1, 6), (7, 64, 32, 19, 200), (5, 63, 32, 18, 101)])
def test_the_traced_upsampling_matrix_equals_the_constant_one(size, kernel, stride, start, length):
    traced = jax.jit(lambda: layers.bilinear_rows(jnp, size, kernel, stride, start, length))()
    np.testing.assert_array_equal(np.asarray(traced),
                                  layers.upsampling_matrix(size, kernel, stride, start, length))


def test_symbolic_sizes_skip_the_checks_that_need_numbers():
    from jax import export

    b, h = export.symbolic_shape("b, h")
    assert layers.concrete(3, np.int64(4)) and not layers.concrete(3, h)
    assert not layers.wide_kernel_on_small_map((b, h, h, 1024), (3, 3, 1024, 1024))
    cropped = jax.eval_shape(lambda x: layers.crop(x, 2, (h, h)),
                             jax.ShapeDtypeStruct((b, h + 4, h + 4, 1), jnp.float32))
    assert cropped.shape == (b, h, h, 1)

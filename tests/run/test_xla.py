"""fcnjax.run.xla: the compiler options fcnjax compiles with, and that they change no result."""

import jax
import numpy as np

from fcnjax.run import xla


def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_cpu_convolutions_leave_ynnpack_and_keep_their_values_and_gradients():
    x = jax.random.normal(jax.random.key(0), (1, 48, 48, 32))
    w = jax.random.normal(jax.random.key(1), (3, 3, 32, 32))
    options = xla.compiler_options("cpu")
    assert options == xla.CPU_OPTIONS  # this jaxlib knows them; a newer one may not
    grad = jax.grad(lambda x, w: conv(x, w).sum(), argnums=(0, 1))
    ours = xla.jit(grad).lower(x, w).compile().as_text()
    default = jax.jit(grad).lower(x, w).compile().as_text()
    assert "convolution(" in ours and "__ynn_fusion" in default
    for line in ours.splitlines():  # every convolution is XLA's own, none inside a fusion call
        assert not ("__ynn_fusion" in line and "convolution" in line)
    for a, b in zip(xla.jit(grad)(x, w), jax.jit(grad)(x, w)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_no_options_for_other_backends():
    assert xla.compiler_options("gpu") == {}
    assert xla.compiler_options("tpu") == {}

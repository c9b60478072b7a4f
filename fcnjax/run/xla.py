"""XLA compiler options that fcnjax compiles its steps with: the one place they are chosen.

On the CPU, jaxlib 0.10 hands every convolution (and its weight gradient) to YNNPACK by
default. For fcnjax's convolutions that path is 2.5-3x slower than XLA's own (Eigen)
convolution, measured one layer at a time and on whole train steps (``BENCHMARKS.md``,
"CPU: why the step was slow"): a 3x3 64->64 convolution of a 252x252 map took 89 ms
forward and 130 ms for its weight gradient through YNNPACK, 34 and 48 ms through Eigen,
one core. Dots and reductions stay with YNNPACK, which is the fast path for them (the
fc6 input gradient, an 81x4096 by 4096x25088 product, takes 179 ms there and 1.7 s in Eigen).

The option only chooses which library runs a convolution. Both compute in the operands'
dtype with the same accumulation; results differ by summation order only (the parity tests
against PyTorch hold at the same ~1e-6). No fast-math flag is set.

Usage: :func:`jit` wherever fcnjax compiles, or pass :func:`compiler_options` to your own
``jax.jit(..., compiler_options=...)`` when you jit fcnjax models in your code. Nothing is
set process-wide: ``XLA_FLAGS`` and other code's compilations are left alone.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

CPU_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type":
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
}
"""jaxlib 0.10's default YNNPACK fusions (single dots, reductions, convolutions) minus the
convolutions."""


@functools.cache
def _accepted() -> bool:
    """Whether this jaxlib knows the CPU options (a newer one may rename them)."""
    try:
        jax.jit(jnp.negative, compiler_options=CPU_OPTIONS).lower(
            jnp.zeros(2, jnp.float32)).compile()
    except Exception:  # noqa: BLE001 - an unknown option is a compile error of any kind
        return False
    return True


def compiler_options(backend: str | None = None) -> dict[str, Any]:
    """The options for ``backend`` (default: JAX's default backend); {} where none apply."""
    backend = backend or jax.default_backend()
    if backend == "cpu" and _accepted():
        return dict(CPU_OPTIONS)
    return {}


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` with :func:`compiler_options` for the default backend."""
    return jax.jit(fn, compiler_options=compiler_options() or None, **kwargs)

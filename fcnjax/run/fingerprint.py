"""Fingerprints of arrays: 64 bits per array, the same wherever and however it is laid out.

Orbax writes no checksum of array data, so :mod:`fcnjax.run.checkpoint` saves these beside each
checkpoint (:func:`record`) and compares them after a restore (:func:`verify`). Each is two
32-bit sums of a bijective mix of the array's 32-bit words and their positions: any one
changed word changes both sums, and integer addition gives the same sum whatever the order
or sharding of the reduction. Small states held whole by this process are summed on the
host with numpy (no compile); larger or sharded ones where they live, one jitted reduction
per set of devices (no copy to the host; with several processes every process must call).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ALGORITHM = "fcnjax-fmix32-sum-2x32"  # the algorithm, recorded with the checksums
HOST_BYTES = 64 * 2**20  # states up to this size are fingerprinted on the host (no compile)
_GOLDEN, _SEEDS = 0x9E3779B1, (0x243F6A88, 0x85A308D3)


def _mix(h: Any) -> Any:
    """murmur3's 32-bit finaliser, a bijection of uint32 (numpy or jax arrays)."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _bits(x: Any, unsigned: Any) -> Any:
    """``x`` reinterpreted as the unsigned integer type of its width."""
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x).reshape(-1).view(unsigned)
    return jax.lax.bitcast_convert_type(x, unsigned)


def _words(x: Any, xp: Any) -> Any:
    """The bits of array ``x`` as a flat uint32 vector; ``xp``: numpy or jax.numpy."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if xp.iscomplexobj(x):
        x = xp.stack([xp.real(x), xp.imag(x)], axis=-1)
    if x.dtype == np.bool_:
        x = x.astype(xp.uint8)
    unsigned = {1: xp.uint8, 2: xp.uint16, 4: xp.uint32, 8: xp.uint32}[np.dtype(x.dtype).itemsize]
    return _bits(x, unsigned).astype(xp.uint32).reshape(-1)


def _fingerprint(x: Any, xp: Any) -> tuple[Any, Any]:
    """Two 32-bit sums of the bits of array ``x`` (``xp``: numpy or jax.numpy).

    Each sum adds ``mix(word ^ mix(index * phi + seed))`` over the array's 32-bit words,
    modulo 2**32: a bijection of each word, so any one changed word changes both sums, and
    integer addition gives the same sum whatever the order or sharding of the reduction.
    """
    words = _words(x, xp)
    index = xp.arange(words.size, dtype=xp.uint32)
    first, second = (xp.sum(_mix(words ^ _mix(index * np.uint32(_GOLDEN) + np.uint32(seed))),
                            dtype=xp.uint32) for seed in _SEEDS)
    return first, second


def _finite(x: Any, xp: Any) -> Any:
    """Whether every element of float array ``x`` is finite."""
    return xp.all(xp.isfinite(x))


@jax.jit
def _device_sums(arrays: list[jax.Array]) -> list[tuple[Any, Any]]:
    """``_fingerprint`` of each array, on its devices (scalars out: replicated)."""
    return [_fingerprint(x, jnp) for x in arrays]


@jax.jit
def _device_finite(arrays: list[jax.Array]) -> list[Any]:
    """``_finite`` of each array, on its devices."""
    return [_finite(x, jnp) for x in arrays]


def _hashable(dtype: Any) -> bool:
    """Whether arrays of ``dtype`` get a fingerprint: whole-byte numbers, bools, PRNG keys."""
    if jnp.issubdtype(dtype, jax.dtypes.prng_key) or dtype == np.bool_:
        return True
    if jnp.issubdtype(dtype, np.integer):
        return jnp.iinfo(dtype).bits in (8, 16, 32, 64)
    if jnp.issubdtype(dtype, np.inexact):
        return jnp.finfo(dtype).bits in (8, 16, 32, 64)
    return False


def named_leaves(tree: Any) -> list[tuple[str, Any]]:
    """[("params/trunk/conv1_1/kernel", leaf), ...] of a nested-dict tree."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [("/".join(str(getattr(k, "key", k)) for k in path), leaf) for path, leaf in flat]


def _arrays(tree: Any) -> list[tuple[str, Any]]:
    """The named leaves of ``tree`` that get fingerprints: jax arrays as they are, other
    leaves (numpy arrays, Python numbers) as numpy arrays of the dtype jax gives them."""
    named = [(name, leaf if isinstance(leaf, jax.Array) else np.asarray(jnp.asarray(leaf)))
             for name, leaf in named_leaves(tree)]
    return [(name, x) for name, x in named if _hashable(x.dtype)]


def _to_host(x: Any) -> np.ndarray:
    """Array ``x`` as a numpy array (a PRNG key array as its key data)."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _per_array(named: list[tuple[str, Any]], on_host: Any, on_device: Any) -> dict[str, Any]:
    """{name: on_host(numpy array)} for small states held whole by this process (no
    compile), else {name: on_device([arrays])[i]}, one jitted call per set of devices
    (with several processes, every process must call this: the sums are collectives)."""
    host = (sum(x.nbytes for _, x in named) <= HOST_BYTES and
            all(getattr(x, "is_fully_addressable", True) for _, x in named))
    groups: dict[Any, list[tuple[str, Any]]] = {}
    for name, x in named:
        where = ("host" if host or not isinstance(x, jax.Array)
                 else frozenset(x.sharding.device_set))
        groups.setdefault(where, []).append((name, x))
    found = {}
    for where, group in groups.items():
        arrays = [x for _, x in group]
        results = ([on_host(_to_host(x)) for x in arrays] if where == "host"
                   else jax.device_get(on_device(arrays)))
        found.update(zip([name for name, _ in group], results))
    return found


def fingerprints(tree: Any) -> dict[str, dict[str, Any]]:
    """{name: {"shape", "dtype", "sum" (16 hex digits)}} of every array of ``tree``.

    The same whether computed on the host or on the devices, sharded or not; arrays of
    sub-byte or non-numeric dtypes are left out.
    """
    named = _arrays(tree)
    sums = _per_array(named, lambda x: _fingerprint(x, np), _device_sums)
    return {name: {"shape": list(np.shape(x)), "dtype": str(x.dtype),
                   "sum": f"{int(sums[name][0]):08x}{int(sums[name][1]):08x}"}
            for name, x in named}


def nonfinite(tree: Any) -> list[str]:
    """Names of the float arrays of ``tree`` holding a NaN or an infinity."""
    named = [(name, x) for name, x in _arrays(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    finite = _per_array(named, lambda x: _finite(x, np), _device_finite)
    return [name for name, _ in named if not bool(finite[name])]


def record(tree: Any) -> dict[str, Any]:
    """The JSON saved beside a checkpoint's arrays: the algorithm and each array's sum."""
    return {"algorithm": ALGORITHM, "arrays": fingerprints(tree)}


def params_first(names: Any) -> list[str]:
    """``names`` sorted, the model's own arrays (``params/...``) before optimizer slots."""
    return sorted(names, key=lambda name: (not name.startswith("params/"), name))


def listed(names: list[str], limit: int = 3) -> str:
    """"a, b, c and 4 more"."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def verify(record: dict[str, Any] | None, restored: Any) -> str | None:
    """What differs between the restored arrays and the checksums saved with them, or None.

    record: the saved checksums, or None for a checkpoint written before them: then only
    NaN or infinite floats count as damage. Arrays restored with another dtype or shape than
    they were saved with (a cast on restore) cannot be compared and are skipped.
    """
    if record is None:
        bad = params_first(nonfinite(restored))
        return f"NaN or infinite values in {listed(bad)}" if bad else None
    found = fingerprints(restored)
    if record.get("algorithm") != ALGORITHM:
        return None  # a fingerprint this version cannot recompute: nothing to compare
    saved = record.get("arrays", {})
    bad = [name for name, f in found.items() if name in saved
           and (saved[name].get("dtype"), saved[name].get("shape")) == (f["dtype"], f["shape"])
           and saved[name].get("sum") != f["sum"]]
    return f"checksum mismatch in {listed(params_first(bad))}" if bad else None

"""Data parallel training over a device mesh: one code path on 1 device, N devices, N hosts.

The train and eval steps of :mod:`fcnjax.train` stay pure functions of one global batch;
this module only says where their arrays live and compiles them with ``jax.jit``
shardings, so XLA inserts the cross-device reductions (the gradient all-reduce) itself.

- The mesh has one axis, ``"data"`` (:data:`DATA`), over every device of every process
  (``config.mesh.data = -1``) or the first ``n`` devices of a single process.
- Batches are split along that axis: ``config.train.batch_size`` is the *global* batch,
  each process feeds ``batch_size / process_count`` examples, each device computes
  ``batch_size / device_count``. The loss is reduced over the global batch, so a step on N
  devices is the step on 1 device with the same global batch (up to float summation order).
- Parameters and optimizer state are replicated, or with ``config.mesh.shard_params``
  (FSDP-style, for large models) every array of at least ``min_shard_size`` elements is
  split along one of its dimensions that the mesh size divides; XLA gathers it when used.
- Multi-host: :func:`initialize` runs ``jax.distributed.initialize``, each process turns its
  own slice of the batch into a global ``jax.Array`` (:func:`global_batch`), orbax writes and
  restores the sharded state (:mod:`fcnjax.run.checkpoint`, restoring onto the template's
  shardings, so a checkpoint written on 8 devices restores on 1 and the reverse) and only
  :func:`is_main_process` logs and writes images.

``jax.pmap`` is JAX's legacy way to do this; nothing here uses it.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fcnjax.data import transforms
from fcnjax.run import xla
from fcnjax.run.errors import ConfigError

DATA = "data"
"""Name of the mesh axis the batch is split along."""

MIN_SHARD_SIZE = 2 ** 18
"""Default smallest array (elements) that ``shard_params`` splits; smaller ones replicate."""


def initialize(*, coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1, auto: bool = False,
               environ: Mapping[str, str] = os.environ) -> bool:
    """Join a multi-process run with ``jax.distributed.initialize``; True if one was joined.

    Call once, first thing in ``main()``, before any other JAX call. Arguments left unset
    come from the environment: ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. ``auto`` leaves all three to JAX's cluster
    detection (SLURM, Open MPI, Kubernetes, Cloud TPU). With neither, nothing happens: a
    single process on its local devices.
    """
    address = coordinator_address or environ.get("JAX_COORDINATOR_ADDRESS", "")
    if auto:
        jax.distributed.initialize()
        return True
    if not address:
        return False
    count = num_processes or int(environ.get("JAX_NUM_PROCESSES", "0"))
    index = process_id if process_id >= 0 else int(environ.get("JAX_PROCESS_ID", "-1"))
    if count <= 0 or index < 0:
        raise ValueError(f"coordinator {address!r} set but not the process count ({count}) "
                         "and id ({index}): set JAX_NUM_PROCESSES and JAX_PROCESS_ID")
    jax.distributed.initialize(coordinator_address=address, num_processes=count,
                               process_id=index)
    return True


def is_main_process() -> bool:
    """True on process 0, the one that logs, prints and writes images."""
    return jax.process_index() == 0


def make_mesh(data: int = -1, devices: list[Any] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``data`` devices (-1: all of ``jax.devices()``).

    A subset (``data`` below the device count) is only possible in a single process: in a
    multi-process run every process must own devices of the mesh.
    """
    devices = list(jax.devices() if devices is None else devices)
    if data == -1:
        data = len(devices)
    if not 1 <= data <= len(devices):
        raise ConfigError(f"config.mesh.data = {data}: expected -1 or 1..{len(devices)} "
                          "(the devices present)")
    if data != len(devices) and jax.process_count() > 1:
        raise ConfigError(f"config.mesh.data = {data} in a {jax.process_count()}-process run: "
                          f"the mesh must hold all {len(devices)} devices (set -1)")
    return Mesh(np.array(devices[:data]), (DATA,))


def mesh_from_config(config: Mapping[str, Any]) -> Mesh:
    """The mesh of ``config.mesh`` (field ``data``)."""
    return make_mesh(config["data"])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split along ``"data"``, the rest whole."""
    return NamedSharding(mesh, PartitionSpec(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def array_spec(shape: tuple[int, ...], size: int, min_shard_size: int) -> PartitionSpec:
    """Where one parameter-like array of ``shape`` lives on a mesh of ``size`` devices.

    Arrays of ``min_shard_size`` elements or more are split along their largest dimension
    that ``size`` divides (the output channels of most conv kernels); others replicate.
    """
    if size == 1 or math.prod(shape) < min_shard_size:
        return PartitionSpec()
    fits = [d for d in range(len(shape)) if shape[d] % size == 0]
    if not fits:
        return PartitionSpec()
    axis = max(fits, key=lambda d: (shape[d], d))
    return PartitionSpec(*([None] * axis), DATA)


def state_sharding(state: Any, mesh: Mesh, *, shard_params: bool = False,
                   min_shard_size: int = MIN_SHARD_SIZE) -> Any:
    """A tree of NamedShardings matching ``state`` (a TrainState, or any pytree of arrays).

    Everything replicated, or with ``shard_params`` the large arrays split along ``"data"``
    (:func:`array_spec`); the momentum of a kernel has the kernel's shape, so it is split
    the same way. Leaves may be arrays or ``jax.ShapeDtypeStruct``.
    """
    size = mesh.shape[DATA]

    def leaf(x):
        spec = (array_spec(tuple(np.shape(x)), size, min_shard_size) if shard_params
                else PartitionSpec())
        return NamedSharding(mesh, spec)

    return jax.tree.map(leaf, state)


def shard_state(state: Any, sharding: Any) -> Any:
    """``state`` placed on the mesh as ``sharding`` says (every process passes the same state).

    Every leaf must already hold the same value in every process (same seed, or restored).
    """
    return jax.device_put(state, sharding)


def check_batch(batch_size: int, mesh: Mesh) -> int:
    """Examples each process feeds for a global batch of ``batch_size``; ValueError if the
    devices of the mesh cannot share it evenly."""
    devices = mesh.shape[DATA]
    if batch_size % devices:
        raise ConfigError(f"global batch size {batch_size} is not a multiple of the "
                          f"{devices} devices of the mesh")
    return batch_size // jax.process_count()


def global_batch(batch: Mapping[str, Any], mesh: Mesh, *, per_process: bool = True
                 ) -> dict[str, jax.Array]:
    """A host batch as global ``jax.Array``s split along ``"data"``.

    per_process=True (training): ``batch`` is this process's slice of the global batch,
    whose leading size is this process's share; processes are concatenated in order
    (process 0's examples first). per_process=False (evaluation): every process holds the
    same whole batch and contributes the rows of its own devices.
    """
    sharding = batch_sharding(mesh)
    local_devices = len(sharding.addressable_devices)

    def to_global(x):
        x = np.asarray(x)
        if per_process:
            if x.shape[0] % local_devices:
                raise ValueError(f"per-process batch of {x.shape[0]} examples does not split "
                                 f"over this process's {local_devices} devices")
            return jax.make_array_from_process_local_data(sharding, x)
        check_batch(x.shape[0], mesh)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return {k: to_global(v) for k, v in batch.items()}


def pad_batch(batch: Mapping[str, np.ndarray], multiple: int, ignore_label: int
              ) -> dict[str, np.ndarray]:
    """``batch`` padded along its first axis to a multiple of ``multiple`` with examples
    that count for nothing: labels (``label``, ``geo_label``...) ``ignore_label``, images
    and weights zero.

    Used for the last, short eval batch: losses and confusion skip void pixels, so the sums
    of a padded batch equal those of the batch itself.
    """
    size = len(batch["label"])
    pad = -size % multiple
    if not pad:
        return dict(batch)

    def extend(key, x):
        fill = ignore_label if transforms.is_label(key) else 0
        return np.concatenate([x, np.full((pad, *x.shape[1:]), fill, x.dtype)])

    return {k: extend(k, np.asarray(v)) for k, v in batch.items()}


def jit_train_step(step: Callable, mesh: Mesh, sharding: Any) -> Callable:
    """``step(state, batch, key) -> (state, measurements)`` (``train.train_step`` with its
    keyword arguments bound) compiled for the mesh: the state donated and kept at
    ``sharding``, the batch split along ``"data"``, key and measurements replicated."""
    same = replicated(mesh)
    return xla.jit(step, in_shardings=(sharding, batch_sharding(mesh), same),
                   out_shardings=(sharding, same), donate_argnums=(0,))


def jit_eval_step(step: Callable, mesh: Mesh, sharding: Any) -> Callable:
    """``step(state, batch) -> (measurements, predictions)`` (``objective.eval_step``) compiled
    for the mesh. Measurements and predictions come back replicated, so every process (and
    process 0, which draws them) can read them."""
    same = replicated(mesh)
    return xla.jit(step, in_shardings=(sharding, batch_sharding(mesh)),
                   out_shardings=(same, same))

"""Orbax checkpoints: the one way train, evaluate and predict save and restore state.

Checkpoints live in ``<workdir>/checkpoints/<step>`` (the newest few, to resume) and
``<workdir>/best/<step>`` (the best evaluated by mean IU). A train state is saved as its state
dict (``flax.serialization.to_state_dict``: step, params, opt_state), so restoring needs a
template state of the same structure, which ``train.create_train_state`` provides; a
checkpoint of another model (other layers or shapes) is refused with ``CheckpointMismatch``
naming the differences.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

State = TypeVar("State")
BEST_METRIC = "mean_iu"


class CheckpointMismatch(ValueError):
    """A checkpoint whose arrays do not fit the model being restored (another model)."""


def checkpoint_dir(workdir: str) -> str:
    """Absolute path of the checkpoint folder of ``workdir``."""
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir: str, *, max_to_keep: int | None = 3,
                 create: bool = True) -> ocp.CheckpointManager:
    """A CheckpointManager over ``<workdir>/checkpoints`` keeping the last ``max_to_keep``."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def make_best_manager(workdir: str) -> ocp.CheckpointManager:
    """A CheckpointManager over ``<workdir>/best`` keeping the one state of highest mean IU."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=1, best_fn=lambda metrics: metrics[BEST_METRIC], best_mode="max")
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "best"),
                                 options=options)


def best_score(manager: ocp.CheckpointManager) -> float | None:
    """Mean IU of the best checkpoint a best-manager holds, or None when it holds none."""
    step = manager.best_step()
    if step is None:
        return None
    return float((manager.metrics(step) or {}).get(BEST_METRIC, float("-inf")))


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         metrics: dict[str, float] | None = None) -> None:
    """Start saving ``state`` as checkpoint ``step`` (asynchronously; see ``wait``).

    ``metrics`` (e.g. {"mean_iu": 0.6}) are stored with it for a best-manager to rank.
    """
    manager.save(int(step), args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
                 metrics=metrics, force=True)


def wait(manager: ocp.CheckpointManager) -> None:
    """Block until every started save is on disk."""
    manager.wait_until_finished()


def latest_step(workdir: str) -> int | None:
    """Step of the newest checkpoint in ``workdir``, or None when there is none."""
    if not os.path.isdir(checkpoint_dir(workdir)):
        return None
    with make_manager(workdir, create=False) as manager:
        return manager.latest_step()


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{"params/trunk/conv1_1/kernel": shape, ...} of a nested-dict tree of arrays."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path):
            tuple(getattr(leaf, "shape", None) or np.shape(leaf)) for path, leaf in flat}


def check_compatible(manager: ocp.CheckpointManager, step: int, template: Any) -> None:
    """Raise CheckpointMismatch if checkpoint ``step``'s arrays differ from ``template``'s.

    The message names up to five missing, unexpected and wrong-shaped arrays each.
    """
    path = os.path.join(str(manager.directory), str(step), "default")
    saved = _shapes(ocp.StandardCheckpointHandler().metadata(epath.Path(path)).tree)
    wanted = _shapes(template)
    def params_first(names):  # the model's own arrays speak clearer than optimizer slots
        return sorted(names, key=lambda name: (not name.startswith("params/"), name))

    missing = params_first(set(wanted) - set(saved))
    unexpected = params_first(set(saved) - set(wanted))
    shapes = [f"{k} {saved[k]} (model: {wanted[k]})"
              for k in params_first(set(saved) & set(wanted)) if saved[k] != wanted[k]]
    if missing or unexpected or shapes:
        parts = [f"{len(names)} {what}: {', '.join(names[:5])}" + (" ..." if len(names) > 5
                                                                   else "")
                 for what, names in (("missing", missing), ("unexpected", unexpected),
                                     ("wrong shape", shapes)) if names]
        raise CheckpointMismatch(
            f"checkpoint {path} does not fit this model (is it from another model or "
            f"config?): {'; '.join(parts)}")


def restore(manager: ocp.CheckpointManager, step: int, state: State) -> State:
    """``state`` with the values of checkpoint ``step`` of ``manager``.

    state: a template of the saved structure; CheckpointMismatch if shapes or names differ.
    """
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            flax.serialization.to_state_dict(state))
    check_compatible(manager, step, template)
    restored = manager.restore(step, args=ocp.args.StandardRestore(template))
    return flax.serialization.from_state_dict(state, restored)


def restore_latest(manager: ocp.CheckpointManager, state: State) -> State:
    """``state`` with the values of the newest checkpoint, or ``state`` itself if none.

    state: a template of the saved structure (shapes and dtypes must match).
    """
    step = manager.latest_step()
    return state if step is None else restore(manager, step, state)


def locate(path: str) -> tuple[str, int]:
    """(folder of step folders, step) named by ``path``, for ``--checkpoint``.

    path: a workdir (its newest checkpoint), its ``checkpoints`` or ``best`` folder (the
    newest there), or one step folder such as ``<workdir>/best/400``.
    """
    path = os.path.abspath(path)
    if os.path.basename(path).isdigit() and os.path.isdir(path):
        return os.path.dirname(path), int(os.path.basename(path))
    folder = checkpoint_dir(path) if os.path.isdir(checkpoint_dir(path)) else path
    steps = [int(n) for n in os.listdir(folder) if n.isdigit()] if os.path.isdir(folder) else []
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {path}: give a workdir, its checkpoints/ "
                                "or best/ folder, or one <step> folder in them")
    return folder, max(steps)


def restore_path(path: str, state: State) -> State:
    """``state`` restored from the checkpoint ``path`` names (see ``locate``)."""
    folder, step = locate(path)
    options = ocp.CheckpointManagerOptions(create=False)
    with ocp.CheckpointManager(folder, options=options) as manager:
        return restore(manager, step, state)


def restore_params(workdir: str) -> Any:
    """The ``params`` of the newest checkpoint in ``workdir`` (as nested dicts of arrays).

    Used to start one training stage from another (FCN-16s from FCN-32s) by name. With no
    template the arrays keep the layout they were saved with where this process's devices
    allow it; a checkpoint written on more devices than are present here (8 GPUs, read on
    1) lands whole on this process's first device instead.
    """
    step = latest_step(workdir)
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}")
    here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    with make_manager(workdir, create=False) as manager:
        restored = manager.restore(step, args=ocp.args.StandardRestore(fallback_sharding=here))
    return restored["params"]

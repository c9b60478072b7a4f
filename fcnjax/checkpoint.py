"""Orbax checkpoints: the one way train, evaluate and predict save and restore state.

Checkpoints live in ``<workdir>/checkpoints/<step>``. A train state is saved as its state
dict (``flax.serialization.to_state_dict``: step, params, opt_state), so restoring needs a
template state of the same structure, which ``train.create_train_state`` provides.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import flax.serialization
import jax
import orbax.checkpoint as ocp

State = TypeVar("State")


def checkpoint_dir(workdir: str) -> str:
    """Absolute path of the checkpoint folder of ``workdir``."""
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir: str, *, max_to_keep: int | None = 3,
                 create: bool = True) -> ocp.CheckpointManager:
    """A CheckpointManager over ``<workdir>/checkpoints`` keeping the last ``max_to_keep``."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
    """Start saving ``state`` as checkpoint ``step`` (asynchronously; see ``wait``)."""
    manager.save(int(step), args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
                 force=True)


def wait(manager: ocp.CheckpointManager) -> None:
    """Block until every started save is on disk."""
    manager.wait_until_finished()


def latest_step(workdir: str) -> int | None:
    """Step of the newest checkpoint in ``workdir``, or None when there is none."""
    if not os.path.isdir(checkpoint_dir(workdir)):
        return None
    with make_manager(workdir, create=False) as manager:
        return manager.latest_step()


def restore_latest(manager: ocp.CheckpointManager, state: State) -> State:
    """``state`` with the values of the newest checkpoint, or ``state`` itself if none.

    state: a template of the saved structure (shapes and dtypes must match).
    """
    step = manager.latest_step()
    if step is None:
        return state
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            flax.serialization.to_state_dict(state))
    restored = manager.restore(step, args=ocp.args.StandardRestore(template))
    return flax.serialization.from_state_dict(state, restored)


def restore_params(workdir: str) -> Any:
    """The ``params`` of the newest checkpoint in ``workdir`` (as nested dicts of arrays).

    Used to start one training stage from another (FCN-16s from FCN-32s) by name.
    """
    step = latest_step(workdir)
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}")
    with make_manager(workdir, create=False) as manager:
        return manager.restore(step, args=ocp.args.StandardRestore())["params"]

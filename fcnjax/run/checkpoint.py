"""Orbax checkpoints: the one way train, evaluate and predict save and restore state.

Checkpoints live in ``<workdir>/checkpoints/<step>`` (the newest few, to resume) and
``<workdir>/best/<step>`` (the best evaluated by mean IU). A train state is saved as its state
dict (``flax.serialization.to_state_dict``: step, params, opt_state), so restoring needs a
template state of the same structure, which ``fcnjax.run.state.create_train_state`` provides; a
checkpoint of another model (other layers or shapes) is refused with ``CheckpointMismatch``
naming the differences.

Checksums. Orbax writes no checksum of array data (zarr3's ``crc32c`` covers a shard's
index only, and ocdbt none), so a flipped byte restores silently. Each save therefore adds a
second orbax item, ``<step>/checksums/metadata`` (JSON, written by process 0 and finalised
with the step, atomically, like the arrays): for every array its shape, dtype and a 64-bit
fingerprint of its bits (:mod:`fcnjax.run.fingerprint`: the same on the host and on devices,
sharded or not, on every process). A restore recomputes them on the restored arrays and
compares. Checkpoints written before (no ``checksums``) still restore; for them only what can
be checked is: that every file reads and that no float is NaN or infinite.

Damage. A checkpoint whose files are missing, truncated or unreadable, or whose values do not
match their checksums, raises ``CorruptCheckpoint`` naming the step and what is wrong.
``restore_latest`` (resuming a run) moves such a step folder aside to ``<step>.corrupt``
(nothing is ever deleted), says so in one line, and resumes from the newest intact one (or
from scratch when none is). ``restore_path`` (evaluate, predict: read-only) moves nothing and
names the intact steps to use instead.

Saving. ``save`` checks that the checkpoint folder can be written before orbax starts, and
orbax creates the step folder in the caller's thread, so an unwritable folder fails at once
with ``CheckpointSaveFailed`` naming the folder, the cause and the last good checkpoint
(rather than orbax's background threads waiting minutes for a folder never created).
"""

from __future__ import annotations

import gc
import glob
import json
import logging
import os
import sys
import tempfile
from typing import Any, TypeVar

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from tqdm import tqdm

from fcnjax.run import fingerprint
from fcnjax.run.errors import DEBUG_ENV, UserError
from fcnjax.weights.layouts import mismatch_report

State = TypeVar("State")
BEST_METRIC = "mean_iu"
ITEM = "default"  # the state dict's orbax item: <step>/default
CHECKSUMS = "checksums"  # the checksums' orbax item: <step>/checksums/metadata (JSON)
CORRUPT_SUFFIX = ".corrupt"


class CheckpointMismatch(UserError, ValueError):
    """A checkpoint whose arrays do not fit the model being restored (another model)."""


class CorruptCheckpoint(UserError, ValueError):
    """A checkpoint that cannot be read back as it was saved: missing, truncated or
    unreadable files, or values that differ from their checksums."""

    def __init__(self, folder: str, step: int, reason: str, advice: str = ""):
        self.folder, self.step, self.reason = folder, step, reason
        super().__init__(f"checkpoint {step} in {folder} is damaged ({reason}){advice}")


class CheckpointSaveFailed(UserError, OSError):
    """A checkpoint could not be written (an unwritable or vanished folder, a full disk)."""


def checkpoint_dir(workdir: str) -> str:
    """Absolute path of the checkpoint folder of ``workdir``."""
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def _options(**options: Any) -> ocp.CheckpointManagerOptions:
    """Manager options with the step folder created in the saving thread, so that a folder
    that cannot be created fails the save at once (see ``save``)."""
    return ocp.CheckpointManagerOptions(
        async_options=ocp.AsyncOptions(create_directories_asynchronously=False), **options)


class OrbaxErrorFilter(logging.Filter):
    """Drops the ERROR records orbax's own modules log (with a traceback each, one per
    writer thread: 86-180 of them when the disk fills). fcnjax raises every orbax failure
    as one exception with its cause (CheckpointSaveFailed, CorruptCheckpoint) instead.
    ``FCNJAX_DEBUG`` (``--debug``) keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_orbax = f"{os.sep}orbax{os.sep}" in (record.pathname or "")
        return not (from_orbax and record.levelno >= logging.ERROR
                    and os.environ.get(DEBUG_ENV, "") in ("", "0"))


def _quiet_orbax_errors() -> None:
    """Install :class:`OrbaxErrorFilter` on the logger orbax writes to (absl's), once."""
    logger = logging.getLogger("absl")
    if not any(isinstance(f, OrbaxErrorFilter) for f in logger.filters):
        logger.addFilter(OrbaxErrorFilter())


def _manager(folder: str, options: ocp.CheckpointManagerOptions) -> ocp.CheckpointManager:
    """A manager over ``folder`` of the two items a step holds: the state and its checksums."""
    _quiet_orbax_errors()
    return ocp.CheckpointManager(folder, options=options, item_names=(ITEM, CHECKSUMS))


def make_manager(workdir: str, *, max_to_keep: int | None = 3,
                 create: bool = True) -> ocp.CheckpointManager:
    """A CheckpointManager over ``<workdir>/checkpoints`` keeping the last ``max_to_keep``."""
    return _manager(checkpoint_dir(workdir), _options(max_to_keep=max_to_keep, create=create))


def make_best_manager(workdir: str) -> ocp.CheckpointManager:
    """A CheckpointManager over ``<workdir>/best`` keeping the one state of highest mean IU."""
    options = _options(max_to_keep=1, best_fn=lambda metrics: metrics[BEST_METRIC],
                       best_mode="max")
    return _manager(os.path.join(os.path.abspath(workdir), "best"), options)


def best_score(manager: ocp.CheckpointManager) -> float | None:
    """Mean IU of the best checkpoint a best-manager holds, or None when it holds none."""
    step = manager.best_step()
    if step is None:
        return None
    return float((manager.metrics(step) or {}).get(BEST_METRIC, float("-inf")))


# ---------------------------------------------------------------------------------------
# Saving.


def _cause(error: BaseException) -> str:
    """A short account of ``error``: an OSError's reason and file, else its first line."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    first = next(iter(str(error).strip().splitlines()), "")
    text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _unwritable(folder: str) -> str | None:
    """Why a step folder cannot be created in ``folder``, or None when one can."""
    try:
        os.makedirs(folder, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".fcnjax-write-test-", dir=folder))
    except OSError as e:
        return e.strerror or _cause(e)
    return None


def _everywhere(flag: bool) -> bool:
    """Whether ``flag`` holds on every process (with several, all of them must call this)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(flag))))


def _kept(folder: str) -> str:
    """"the last good checkpoint, step 2, is kept in <folder>" (or that there is none)."""
    steps = intact_steps(folder)
    return (f"the last good checkpoint, step {steps[-1]}, is kept in {folder}" if steps
            else f"no earlier checkpoint is in {folder}")


def _save_failed(folder: str, step: int | None, cause: str) -> CheckpointSaveFailed:
    """The one-line error of a save that failed."""
    _silence_orbax_leftovers()  # its writer threads' debris: "Event loop is closed"
    which = f"checkpoint {step}" if step is not None else "a checkpoint"
    return CheckpointSaveFailed(f"could not save {which} in {folder} ({cause}): {_kept(folder)}; "
                                "make the folder writable (or free space) and rerun to resume")


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         metrics: dict[str, float] | None = None) -> None:
    """Start saving ``state`` as checkpoint ``step`` (asynchronously; see ``wait``), with
    the checksums of its arrays.

    ``metrics`` (e.g. {"mean_iu": 0.6}) are stored with it for a best-manager to rank.
    CheckpointSaveFailed when the previous save failed, when the folder cannot be written
    (checked first, on every process) or when orbax fails to start the save.
    """
    wait(manager)  # a failure of the save before is reported as that one's, not this one's
    folder = str(manager.directory)
    problem = _unwritable(folder)
    if not _everywhere(problem is None):
        raise _save_failed(folder, step, problem or "not writable from another process")
    tree = flax.serialization.to_state_dict(state)
    args = ocp.args.Composite(**{ITEM: ocp.args.StandardSave(tree),
                                 CHECKSUMS: ocp.args.JsonSave(fingerprint.record(tree))})
    try:
        manager.save(int(step), args=args, metrics=metrics, force=True)
    except Exception as e:  # orbax raises whatever the file system or its threads raised
        raise _save_failed(folder, step, _cause(e)) from e


def wait(manager: ocp.CheckpointManager) -> None:
    """Block until every started save is on disk (CheckpointSaveFailed if one failed)."""
    try:
        manager.wait_until_finished()
    except Exception as e:
        raise _save_failed(str(manager.directory), None, _cause(e)) from e


# ---------------------------------------------------------------------------------------
# Looking at step folders without reading arrays.


def _json_problem(path: str) -> str | None:
    """Why the JSON file ``path`` is unusable (missing, empty, not JSON), or None."""
    try:
        with open(path, "rb") as f:
            text = f.read()
        if not text.strip():
            return "is empty"
        json.loads(text)
    except FileNotFoundError:
        return "is missing"
    except (OSError, ValueError) as e:
        return f"cannot be read ({_cause(e)})" if isinstance(e, OSError) else "is truncated"
    return None


def _damage(step_dir: str) -> str | None:
    """What is visibly wrong with a step folder (missing, empty or unparsable metadata or
    manifests), or None; reads no array data."""
    item = os.path.join(step_dir, ITEM)
    if not os.path.isdir(item):
        return f"{ITEM}/ is missing"
    jsons = [os.path.join(item, "_METADATA")]
    jsons += [p for p in (os.path.join(step_dir, "_CHECKPOINT_METADATA"),
                          os.path.join(item, "_sharding"),
                          os.path.join(step_dir, CHECKSUMS, "metadata")) if os.path.lexists(p)]
    jsons += sorted(glob.glob(os.path.join(item, "array_metadatas", "*")))
    for path in jsons:
        problem = _json_problem(path)
        if problem:
            return f"{os.path.relpath(path, step_dir)} {problem}"
    shards = sorted(glob.glob(os.path.join(item, "ocdbt.process_*")))
    manifests = [os.path.join(p, "manifest.ocdbt") for p in [item] * bool(shards) + shards]
    for path in manifests:
        if not os.path.isfile(path):
            return f"{os.path.relpath(path, step_dir)} is missing"
        if os.path.getsize(path) == 0:
            return f"{os.path.relpath(path, step_dir)} is empty"
    return None


def _steps(folder: str) -> list[int]:
    """The steps of the step folders in ``folder``, sorted ([] when it cannot be listed)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(int(n) for n in names if n.isdigit() and os.path.isdir(os.path.join(folder, n)))


def intact_steps(folder: str) -> list[int]:
    """The steps in ``folder`` whose files look whole (see ``_damage``; arrays unread)."""
    return [s for s in _steps(folder) if _damage(os.path.join(folder, str(s))) is None]


def _checksums(step_dir: str) -> dict[str, Any] | None:
    """The checksums saved in a step folder, or None when it has none (older checkpoints)."""
    path = os.path.join(step_dir, CHECKSUMS, "metadata")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------
# Restoring.


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{"params/trunk/conv1_1/kernel": shape, ...} of a nested-dict tree of arrays."""
    return {name: tuple(getattr(leaf, "shape", None) or np.shape(leaf))
            for name, leaf in fingerprint.named_leaves(tree)}


def check_compatible(manager: ocp.CheckpointManager, step: int, template: Any) -> None:
    """Raise CheckpointMismatch if checkpoint ``step``'s arrays differ from ``template``'s.

    The message names up to five missing, unexpected and wrong-shaped arrays each.
    """
    path = os.path.join(str(manager.directory), str(step), ITEM)
    saved = _shapes(ocp.StandardCheckpointHandler().metadata(epath.Path(path)).tree)
    report = mismatch_report(_shapes(template), saved, what="arrays", limit=5,
                             order=fingerprint.params_first)
    if report:
        raise CheckpointMismatch(
            f"checkpoint {path} does not fit this model (is it from another model or "
            f"config?): {report}")


def _orbax_leftover(unraisable: Any) -> bool:
    """Whether an unraisable exception is debris of an abandoned orbax read: one of its
    coroutines collected unfinished, or a callback into its closed event loop."""
    code = getattr(unraisable.object, "cr_code", None)
    if code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename:
        return True
    return (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed")


_silencer: list[Any] = []  # the unraisable hook _silence_orbax_leftovers installed, if any


def _silence_orbax_leftovers() -> None:
    """From now on, drop the "Exception ignored in ..." tracebacks that orbax's abandoned
    reads of a damaged checkpoint print when collected, sometimes seconds later; every other
    unraisable exception still goes to the hook there was."""
    if _silencer and sys.unraisablehook is _silencer[0]:
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not _orbax_leftover(unraisable):
            previous(unraisable)

    _silencer[:] = [hook]
    sys.unraisablehook = hook


def _probe(step_dir: str, record: dict[str, Any] | None) -> str | None:
    """Read every array of a step folder onto the host (no template, no devices) and check
    it: what is wrong, or None when everything reads back as saved."""
    item = epath.Path(step_dir) / ITEM
    try:
        tree = ocp.StandardCheckpointHandler().metadata(item).tree
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        with ocp.PyTreeCheckpointer() as reader:
            restored = reader.restore(item, args=ocp.args.PyTreeRestore(
                item=tree, restore_args=restore_args))
    except Exception as e:  # noqa: BLE001 (whatever tensorstore or JSON make of bad files)
        return f"cannot read its arrays: {_cause(e)}"
    return fingerprint.verify(record, restored)


def _read(manager: ocp.CheckpointManager, step: int, args: Any,
          template: Any = None) -> Any:
    """The state dict of checkpoint ``step``, restored with ``args`` (an orbax restore args
    of the state item) and verified against its checksums.

    CorruptCheckpoint when its files are damaged or its values differ from the checksums;
    CheckpointMismatch when ``template`` (if given) does not fit it; another error of the
    restore (a template or placement problem, not the checkpoint's) is raised as it is.
    """
    folder = str(manager.directory)
    step_dir = os.path.join(folder, str(step))
    problem = _damage(step_dir)
    if problem:
        raise CorruptCheckpoint(folder, step, problem)
    if template is not None:
        try:
            check_compatible(manager, step, template)
        except CheckpointMismatch:
            raise
        except Exception as e:
            raise CorruptCheckpoint(folder, step, f"unreadable metadata: {_cause(e)}") from e
    record, error = _checksums(step_dir), None
    try:
        restored = manager.restore(step, args=ocp.args.Composite(**{ITEM: args}))[ITEM]
    except Exception as e:  # noqa: BLE001 (damage or a template problem: the probe tells)
        error = e
    if not _everywhere(error is None):
        _silence_orbax_leftovers()
        problem = _probe(step_dir, record)
        gc.collect()  # the abandoned reads' debris, silenced
        if problem:
            raise CorruptCheckpoint(folder, step, problem) from error
        if error is not None:
            raise error
        raise RuntimeError(f"restoring checkpoint {step} in {folder} failed on another process")
    problem = fingerprint.verify(record, restored)
    if problem:
        raise CorruptCheckpoint(folder, step, problem)
    return restored


def restore(manager: ocp.CheckpointManager, step: int, state: State) -> State:
    """``state`` with the values of checkpoint ``step`` of ``manager``, verified.

    state: a template of the saved structure; CheckpointMismatch if shapes or names differ,
    CorruptCheckpoint if the checkpoint is damaged.
    """
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            flax.serialization.to_state_dict(state))
    restored = _read(manager, step, ocp.args.StandardRestore(template), template)
    return flax.serialization.from_state_dict(state, restored)


def _say(line: str) -> None:
    """Print one line to stderr (process 0 only), above any progress bar."""
    if jax.process_index() == 0:
        tqdm.write(line, file=sys.stderr)


def move_aside(folder: str, step: int) -> str:
    """Rename step folder ``<folder>/<step>`` to ``<step>.corrupt`` (``.corrupt.1``, ... if
    taken) and return the new path; nothing is deleted. Process 0 renames, all return."""
    source = os.path.join(folder, str(step))
    target, n = source + CORRUPT_SUFFIX, 0
    while os.path.lexists(target):
        n += 1
        target = f"{source}{CORRUPT_SUFFIX}.{n}"
    problem = None
    if jax.process_index() == 0:
        try:
            os.rename(source, target)
        except OSError as e:
            problem = _cause(e)
    if not _everywhere(problem is None):
        raise CorruptCheckpoint(folder, step, "found damaged", f", and could not be moved "
                                f"aside ({problem or 'on process 0'}): move or remove it")
    return target


def restore_latest(manager: ocp.CheckpointManager, state: State) -> State:
    """``state`` with the values of the newest intact checkpoint, or ``state`` itself if none.

    A damaged checkpoint is moved aside to ``<step>.corrupt`` with one line printed, and
    the next newest is tried; ``manager`` is reloaded so it no longer lists it.
    state: a template of the saved structure (shapes and dtypes must match).
    """
    folder, moved = str(manager.directory), False
    while (step := manager.latest_step()) is not None:
        try:
            return restore(manager, step, state)
        except CorruptCheckpoint as e:
            target = move_aside(folder, step)
            _say(f"{e}: moved it aside to {target}")
            moved = True
            manager.reload()
            if step in manager.all_steps():
                raise CorruptCheckpoint(folder, step, e.reason, ", and orbax still lists it "
                                        "after moving it aside") from e
    if moved:
        _say(f"no intact checkpoint is left in {folder}: starting from scratch")
    return state


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


def _alternatives(folder: str, step: int, hint: bool = True) -> str:
    """": use one of 54, 57, e.g. --checkpoint <folder>/57" (the intact-looking others)."""
    others = [s for s in intact_steps(folder) if s != step]
    if not others:
        return f"; no other checkpoint in {folder} looks intact"
    example = f", e.g. --checkpoint {os.path.join(folder, str(others[-1]))}" if hint else ""
    return f": use one of {', '.join(map(str, others))}{example}"


def _reader(folder: str) -> ocp.CheckpointManager:
    """A manager that reads ``folder`` and creates nothing."""
    return _manager(folder, _options(create=False))


def restore_path(path: str, state: State) -> State:
    """``state`` restored from the checkpoint ``path`` names (see ``locate``).

    Read-only: a damaged checkpoint raises CorruptCheckpoint naming the intact ones.
    """
    folder, step = locate(path)
    with _reader(folder) as manager:
        try:
            return restore(manager, step, state)
        except CorruptCheckpoint as e:
            raise CorruptCheckpoint(folder, step, e.reason, _alternatives(folder, step)) from e


def saved_fields(path: str) -> set[str] | None:
    """The top-level names of the state saved in the checkpoint ``path`` names (see
    ``locate``), e.g. {"step", "params", "opt_state", "ema_params"}, read from its metadata
    (no array is read); None when that cannot be read (a restore then says why)."""
    folder, step = locate(path)
    item = epath.Path(folder) / str(step) / ITEM
    try:
        return set(ocp.StandardCheckpointHandler().metadata(item).tree)
    except Exception:  # noqa: BLE001 (damaged metadata: restore_path names the damage)
        return None


def latest_step(workdir: str) -> int | None:
    """Step of the newest checkpoint in ``workdir``, or None when there is none."""
    if not os.path.isdir(checkpoint_dir(workdir)):
        return None
    with make_manager(workdir, create=False) as manager:
        return manager.latest_step()


def restore_params(path: str) -> Any:
    """The ``params`` of the checkpoint ``path`` names (as nested dicts of arrays): a
    workdir, its ``checkpoints/`` or ``best/`` folder or one step folder, as ``--checkpoint``
    takes (:func:`locate`).

    Used to start one training stage from another (FCN-16s from FCN-32s) by name. With no
    template the arrays keep the layout they were saved with where this process's devices
    allow it; a checkpoint written on more devices than are present here (8 GPUs, read on
    1) lands whole on this process's first device instead. Read-only: a damaged checkpoint
    raises CorruptCheckpoint naming the intact ones.
    """
    folder, step = locate(path)
    here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    with _reader(folder) as manager:
        try:
            restored = _read(manager, step, ocp.args.StandardRestore(fallback_sharding=here))
        except CorruptCheckpoint as e:
            raise CorruptCheckpoint(folder, step, e.reason,
                                    _alternatives(folder, step, hint=False)) from e
    return restored["params"]


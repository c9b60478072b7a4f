"""A workdir survives damaged checkpoints and an unwritable checkpoint folder.

Steps 1, 2 and 3 of a tiny U-Net's train state are saved; step 3 is then damaged the ways
seen on real disks (flipped bytes in array data, a missing manifest, truncated metadata or
data). Resuming moves it aside to ``3.corrupt`` with one line and restores step 2 exactly;
evaluate/predict's ``restore_path`` refuses it in one line naming the intact steps and
moves nothing. A save into a folder that cannot be written fails at once, in one line.
"""

import glob
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import sample
from fcnjax import models
from fcnjax.run import checkpoint, fingerprint
from fcnjax.run.state import create_train_state

ROOT = pathlib.Path(__file__).parents[2]


def tiny_state():
    """A 2-level, 8-channel U-Net's train state (SGD with momentum)."""
    config = sample.get_config()
    config.model.update({"features": 8, "levels": 2})
    model = models.build(config.model)
    return create_train_state(config, model, jax.random.key(0, impl="rbg"),
                              (1, 32, 32, 1), pretrained=False)


def state_of_step(template, step):
    """``template`` at ``step`` with params and momentum of random (incompressible) values
    that differ from step to step."""
    rng = np.random.default_rng(step)

    def noise(x):
        return x + rng.normal(size=x.shape).astype(x.dtype)

    return template.replace(step=jnp.int32(step), params=jax.tree.map(noise, template.params),
                            opt_state=jax.tree.map(noise, template.opt_state))


def as_numpy(state):
    """The state dict of ``state`` as numpy arrays, to compare exactly."""
    return jax.tree.map(np.asarray, flax.serialization.to_state_dict(state))


def assert_same(state, expected):
    jax.tree.map(np.testing.assert_array_equal, as_numpy(state), as_numpy(expected))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A workdir holding checkpoints 1, 2, 3 (copied afresh by each test: ``workdir``)."""
    template = tiny_state()
    states = {step: state_of_step(template, step) for step in (1, 2, 3)}
    pristine = tmp_path_factory.mktemp("pristine") / "run"
    with checkpoint.make_manager(str(pristine)) as manager:
        for step, state in states.items():
            checkpoint.save(manager, step, state)
        checkpoint.wait(manager)
    return {"template": template, "states": states, "pristine": pristine}


@pytest.fixture
def workdir(saved, tmp_path):
    """A copy of the saved workdir, for a test to damage."""
    copy = tmp_path / "run"
    shutil.copytree(saved["pristine"], copy)
    return copy


def files(folder):
    """Relative paths of the files under ``folder``."""
    return {str(p.relative_to(folder)) for p in pathlib.Path(folder).rglob("*") if p.is_file()}


def largest_data_file(step_dir):
    """The biggest of the data files orbax's ocdbt store wrote for a step: array bytes."""
    found = glob.glob(os.path.join(step_dir, "default", "ocdbt.process_*", "d", "*"))
    return max(found, key=os.path.getsize)


def flip_at(path, offset):
    """Invert the 8 bytes of file ``path`` at ``offset``."""
    data = bytearray(pathlib.Path(path).read_bytes())
    data[offset:offset + 8] = bytes(b ^ 0xFF for b in data[offset:offset + 8])
    pathlib.Path(path).write_bytes(bytes(data))


def orbax_restores(item):
    """Whether orbax alone restores the state item folder ``item`` without an error."""
    try:
        with ocp.StandardCheckpointer() as reader:
            reader.restore(item)
    except Exception:  # noqa: BLE001 - any complaint of orbax's counts as noticed
        return False
    return True


def flip_bytes(step_dir):
    """Flip 8 bytes of array data where orbax itself notices nothing.

    The data files are zstd-compressed, so bytes flipped in a frame header or an entropy
    table make orbax fail by itself; which offsets those are depends on the write. Offsets
    from the middle outwards are tried on a scratch copy until orbax restores the damage
    silently, the case fcnjax's checksums exist for; that offset is flipped in ``step_dir``.
    """
    path = largest_data_file(step_dir)
    size = os.path.getsize(path)
    relative = os.path.relpath(path, step_dir)
    offsets = [size // 2 + sign * k * size // 40 for k in range(16) for sign in (1, -1)][1:]
    with tempfile.TemporaryDirectory() as scratch:
        for offset in offsets:
            copy = os.path.join(scratch, str(offset))
            shutil.copytree(step_dir, copy)
            flip_at(os.path.join(copy, relative), offset)
            if orbax_restores(os.path.join(copy, "default")):
                flip_at(path, offset)
                return
    raise AssertionError(f"no offset of {path} takes flipped bytes silently: {offsets}")


def truncate(path, keep=0.5):
    os.truncate(path, int(os.path.getsize(path) * keep))


DAMAGES = {
    "flipped data bytes": (flip_bytes, "checksum mismatch in "),
    "manifest.ocdbt removed": (lambda d: os.remove(os.path.join(d, "default", "manifest.ocdbt")),
                               "default/manifest.ocdbt is missing"),
    "_METADATA truncated": (lambda d: truncate(os.path.join(d, "default", "_METADATA")),
                            "default/_METADATA is truncated"),
    "array_metadatas truncated": (
        lambda d: truncate(os.path.join(d, "default", "array_metadatas", "process_0")),
        "default/array_metadatas/process_0 is truncated"),
    "data file truncated": (lambda d: truncate(largest_data_file(d)),
                            "cannot read its arrays: "),
}


def damage(workdir, step, how):
    """Damage checkpoint ``step`` of ``workdir`` as DAMAGES[how] says; its expected reason."""
    harm, reason = DAMAGES[how]
    harm(os.path.join(checkpoint.checkpoint_dir(str(workdir)), str(step)))
    return reason


def item_of(workdir, step):
    """The state item folder of checkpoint ``step``."""
    return os.path.join(checkpoint.checkpoint_dir(str(workdir)), str(step), "default")


def damaged_lines(err):
    return [line for line in err.splitlines() if "is damaged" in line]


def test_every_array_gets_a_checksum_saved_with_it(saved):
    step_dir = os.path.join(checkpoint.checkpoint_dir(str(saved["pristine"])), "3")
    record = checkpoint._checksums(step_dir)
    names = {name for name, _ in fingerprint.named_leaves(
        flax.serialization.to_state_dict(saved["states"][3]))}
    assert record["algorithm"] == fingerprint.ALGORITHM
    assert set(record["arrays"]) == names
    kernel = saved["states"][3].params["bottom_conv2"]["kernel"]
    assert record["arrays"]["params/bottom_conv2/kernel"]["shape"] == list(kernel.shape)
    assert all(len(r["sum"]) == 16 for r in record["arrays"].values())
    # and orbax lists the steps as before: the checksums are an item of each step
    assert checkpoint.latest_step(str(saved["pristine"])) == 3


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16, jnp.int32,
                                   jnp.uint8, jnp.bool_])
def test_fingerprints_agree_on_host_and_device_and_see_one_flipped_bit(dtype, monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 7)) * 50
    host = (values > 0) if dtype == jnp.bool_ else values.astype(np.dtype(dtype))
    device = jnp.asarray(host)
    on_host = fingerprint.fingerprints({"x": device})["x"]  # a small state: summed on the host
    with monkeypatch.context() as patch:
        patch.setattr(fingerprint, "HOST_BYTES", -1)  # the path of large or sharded states
        on_device = fingerprint.fingerprints({"x": device})["x"]
    assert on_device == on_host == fingerprint.fingerprints({"x": host})["x"]
    assert on_device["dtype"] == str(device.dtype) and on_device["shape"] == [5, 7]
    flipped = host.copy()
    raw = flipped.reshape(-1).view(np.uint8)
    raw[17] ^= 0x10  # one bit of one element
    assert fingerprint.fingerprints({"x": flipped})["x"]["sum"] != on_device["sum"]
    # the same values elsewhere in the array are another array
    assert fingerprint.fingerprints({"x": host.T.copy()})["x"]["sum"] != on_device["sum"]


def test_flipped_data_bytes_pass_orbax_unnoticed(saved, workdir):
    """The damage the checksums exist for: orbax alone restores it without a word."""
    damage(workdir, 3, "flipped data bytes")
    item = item_of(workdir, 3)
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                            flax.serialization.to_state_dict(saved["template"]))
    with ocp.StandardCheckpointer() as reader:
        raw = reader.restore(item, template)
    differs = jax.tree.map(lambda a, b: not np.array_equal(np.asarray(a), np.asarray(b)), raw,
                           as_numpy(saved["states"][3]))
    assert any(jax.tree.leaves(differs))


@pytest.mark.parametrize("how", list(DAMAGES))
def test_resuming_moves_a_damaged_checkpoint_aside_and_restores_the_one_before(
        saved, workdir, how, capsys):
    before = files(os.path.join(checkpoint.checkpoint_dir(str(workdir)), "3"))
    reason = damage(workdir, 3, how)
    after_damage = files(os.path.join(checkpoint.checkpoint_dir(str(workdir)), "3"))
    with checkpoint.make_manager(str(workdir)) as manager:
        restored = checkpoint.restore_latest(manager, saved["template"])
        assert manager.latest_step() == 2 and list(manager.all_steps()) == [1, 2]
    assert int(restored.step) == 2
    assert_same(restored, saved["states"][2])
    folder = checkpoint.checkpoint_dir(str(workdir))
    assert sorted(os.listdir(folder)) == ["1", "2", "3.corrupt"]
    kept = files(os.path.join(folder, "3.corrupt"))
    assert kept == after_damage and kept <= before  # moved whole, nothing deleted
    lines = damaged_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert lines[0].startswith(f"checkpoint 3 in {folder} is damaged ({reason}")
    assert lines[0].endswith(f"moved it aside to {os.path.join(folder, '3.corrupt')}")
    assert checkpoint.latest_step(str(workdir)) == 2


def test_a_step_damaged_twice_is_moved_aside_under_a_new_name(saved, workdir, capsys):
    folder = checkpoint.checkpoint_dir(str(workdir))
    with checkpoint.make_manager(str(workdir)) as manager:
        damage(workdir, 3, "flipped data bytes")
        assert int(checkpoint.restore_latest(manager, saved["template"]).step) == 2
        checkpoint.save(manager, 3, saved["states"][3])  # the rerun saves step 3 again
        checkpoint.wait(manager)
        damage(workdir, 3, "_METADATA truncated")
        assert int(checkpoint.restore_latest(manager, saved["template"]).step) == 2
    assert sorted(os.listdir(folder)) == ["1", "2", "3.corrupt", "3.corrupt.1"]
    assert len(damaged_lines(capsys.readouterr().err)) == 2


def test_with_no_intact_checkpoint_the_run_starts_from_scratch(saved, workdir, capsys):
    for step, how in ((1, "flipped data bytes"), (2, "manifest.ocdbt removed"),
                      (3, "data file truncated")):
        damage(workdir, step, how)
    with checkpoint.make_manager(str(workdir)) as manager:
        restored = checkpoint.restore_latest(manager, saved["template"])
        assert manager.latest_step() is None
    assert restored is saved["template"]
    err = capsys.readouterr().err
    assert len(damaged_lines(err)) == 3
    assert "no intact checkpoint is left" in err and "starting from scratch" in err
    assert sorted(os.listdir(checkpoint.checkpoint_dir(str(workdir)))) == [
        "1.corrupt", "2.corrupt", "3.corrupt"]


@pytest.mark.parametrize("how", list(DAMAGES))
def test_evaluating_a_damaged_checkpoint_names_it_and_the_intact_ones(saved, workdir, how):
    reason = damage(workdir, 3, how)
    folder = checkpoint.checkpoint_dir(str(workdir))
    listed = sorted(os.listdir(folder))
    with pytest.raises(checkpoint.CorruptCheckpoint) as raised:
        checkpoint.restore_path(str(workdir), saved["template"])
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint 3 in {folder} is damaged ({reason}")
    assert message.endswith(f": use one of 1, 2, e.g. --checkpoint {folder}/2")
    assert sorted(os.listdir(folder)) == listed  # read-only: nothing moved


def test_every_form_of_path_to_a_damaged_checkpoint_is_refused(saved, workdir):
    damage(workdir, 3, "flipped data bytes")
    folder = checkpoint.checkpoint_dir(str(workdir))
    for path in (str(workdir), folder, os.path.join(folder, "3")):
        with pytest.raises(checkpoint.CorruptCheckpoint, match="checkpoint 3 .* use one of 1, 2"):
            checkpoint.restore_path(path, saved["template"])
    assert_same(checkpoint.restore_path(os.path.join(folder, "2"), saved["template"]),
                saved["states"][2])
    with pytest.raises(checkpoint.CorruptCheckpoint, match="checkpoint 3 .* 1, 2$"):
        checkpoint.restore_params(str(workdir))  # a later stage's init: read-only too
    assert "3" in os.listdir(folder)


def test_a_checkpoint_without_checksums_still_restores_and_nan_in_one_is_damage(
        saved, tmp_path, capsys):
    """Checkpoints written before the checksums: plain orbax, one item."""
    folder = checkpoint.checkpoint_dir(str(tmp_path))
    poisoned = saved["states"][2].replace(params=jax.tree.map(
        lambda x: x.at[(0,) * x.ndim].set(jnp.nan), saved["states"][2].params))
    with ocp.CheckpointManager(folder, options=ocp.CheckpointManagerOptions(create=True)) as old:
        for step, state in ((1, saved["states"][1]), (2, poisoned)):
            old.save(step, args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)))
        old.wait_until_finished()
    assert not os.path.exists(os.path.join(folder, "1", checkpoint.CHECKSUMS))
    with checkpoint.make_manager(str(tmp_path)) as manager:
        restored = checkpoint.restore_latest(manager, saved["template"])
        assert_same(restored, saved["states"][1])
        # and a new save beside the old ones gets checksums
        checkpoint.save(manager, 3, saved["states"][3])
        checkpoint.wait(manager)
    lines = damaged_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "NaN or infinite values in params/" in lines[0]
    assert sorted(os.listdir(folder)) == ["1", "2.corrupt", "3"]
    assert_same(checkpoint.restore_path(str(tmp_path), saved["template"]), saved["states"][3])


def test_a_restore_failing_for_another_reason_is_not_taken_for_damage(saved, workdir,
                                                                       monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("a template problem")

    monkeypatch.setattr(ocp.CheckpointManager, "restore", broken)
    with checkpoint.make_manager(str(workdir)) as manager, \
            pytest.raises(RuntimeError, match="a template problem"):
        checkpoint.restore_latest(manager, saved["template"])
    assert sorted(os.listdir(checkpoint.checkpoint_dir(str(workdir)))) == ["1", "2", "3"]


def orbax_waiting_threads():
    return [t for t in threading.enumerate() if type(t).__name__ == "_SignalingThread"]


def save_into_unwritable_folder(workdir, spoil):
    """Save step 1, spoil the checkpoint folder (``spoil(folder)``), save step 2: the
    CheckpointSaveFailed message and the seconds it took to come."""
    state = {"step": jnp.int32(1), "params": {"w": jnp.arange(6.0)}}
    manager = checkpoint.make_manager(workdir)
    checkpoint.save(manager, 1, state)
    checkpoint.wait(manager)
    spoil(str(manager.directory))
    began = time.perf_counter()
    try:
        checkpoint.save(manager, 2, state)
        checkpoint.wait(manager)
    except checkpoint.CheckpointSaveFailed as e:
        return str(e), time.perf_counter() - began
    finally:
        manager.close()
    raise AssertionError("the save did not fail")


def read_only(folder):
    os.chmod(folder, 0o555)


def chmod_blocks_writes(folder):
    """Whether a read-only folder refuses this process's writes (not for root)."""
    probe = os.path.join(folder, "probe")
    os.makedirs(probe)
    os.chmod(probe, 0o555)
    try:
        tempfile.TemporaryFile(dir=probe).close()
        return False
    except PermissionError:
        return True
    finally:
        os.chmod(probe, 0o755)
        os.rmdir(probe)


def test_a_save_into_a_read_only_folder_fails_at_once_in_one_line(tmp_path):
    workdir = str(tmp_path / "run")
    folder = checkpoint.checkpoint_dir(workdir)
    if chmod_blocks_writes(str(tmp_path)):
        try:
            message, seconds = save_into_unwritable_folder(workdir, read_only)
        finally:
            os.chmod(folder, 0o755)
    else:  # root: the same in a process without the capability to override permissions
        assert shutil.which("setpriv"), "root, and no setpriv to drop CAP_DAC_OVERRIDE"
        code = ("import sys; from tests.run.test_checkpoint_faults import *; "
                "m, s = save_into_unwritable_folder(sys.argv[1], read_only); "
                "print(f'{s:.3f}'); print(m)")
        began = time.perf_counter()
        run = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all",
             sys.executable, "-c", code, workdir],
            check=False, capture_output=True, text=True, cwd=ROOT, timeout=120,
            env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT)))
        os.chmod(folder, 0o755)
        assert run.returncode == 0, run.stderr[-3000:]
        assert time.perf_counter() - began < 60  # the process ends: no thread left waiting
        assert "Traceback" not in run.stderr, run.stderr[-3000:]
        seconds, message = run.stdout.strip().splitlines()[-2:]
        seconds = float(seconds)
    assert seconds < 5
    assert message.startswith(f"could not save checkpoint 2 in {folder} (Permission denied")
    assert f"the last good checkpoint, step 1, is kept in {folder}" in message
    assert "\n" not in message
    assert not orbax_waiting_threads()


def test_a_checkpoint_folder_replaced_by_a_file_fails_the_save_at_once(tmp_path):
    def replace_by_file(folder):
        os.rename(folder, folder + ".moved")
        pathlib.Path(folder).write_text("not a folder")

    message, seconds = save_into_unwritable_folder(str(tmp_path / "run"), replace_by_file)
    assert seconds < 5 and "\n" not in message
    assert message.startswith("could not save checkpoint 2 in ")
    assert "(File exists" in message or "(Not a directory" in message
    time.sleep(0.1)
    assert not orbax_waiting_threads()


def test_a_save_that_fails_in_the_background_fails_wait_in_one_line(tmp_path, monkeypatch):
    with checkpoint.make_manager(str(tmp_path)) as manager:
        checkpoint.save(manager, 1, {"w": jnp.ones(3)})
        checkpoint.wait(manager)

        def disk_full(self):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished", disk_full)
        failed = (r"could not save a checkpoint in .* \(No space left on device\)"
                  r": the last good checkpoint, step 1, is kept")
        with pytest.raises(checkpoint.CheckpointSaveFailed, match=failed):
            checkpoint.wait(manager)
        # the next save reports the failure of the one before as that one's
        with pytest.raises(checkpoint.CheckpointSaveFailed, match=failed):
            checkpoint.save(manager, 2, {"w": jnp.ones(3)})
        monkeypatch.undo()
    assert checkpoint.latest_step(str(tmp_path)) == 1


def test_init_checkpoint_takes_what_checkpoint_takes(saved):
    """config.init.checkpoint (restore_params) accepts a workdir, its checkpoints/ folder or
    one step folder, as evaluate and predict's --checkpoint do (it took a workdir only)."""
    run, states = saved["pristine"], saved["states"]
    for path, step in ((run, 3), (run / "checkpoints", 3), (run / "checkpoints" / "2", 2)):
        params = checkpoint.restore_params(str(path))
        jax.tree.map(np.testing.assert_array_equal, params,
                     jax.tree.map(np.asarray, states[step].params))

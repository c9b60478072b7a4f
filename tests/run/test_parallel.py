"""Data parallel training (fcnjax.run.parallel): N devices and N processes equal 1 device.

The multi-device checks run in subprocesses (tests/parallel_worker.py): the forced CPU
device count (``XLA_FLAGS=--xla_force_host_platform_device_count``) is read once when JAX
starts, and this pytest process has long started it.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from fcnjax import metrics, objective, train
from fcnjax.run import checkpoint, parallel, reporting
from tests import parallel_worker as worker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 240  # seconds: a hung collective fails the test instead of blocking CI


FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
"""XLA CPU flags that cut the workers' compile time by about a third (all sides use them)."""


def worker_env(devices):
    flags = f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, XLA_FLAGS=flags)


def start_worker(devices, *args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "parallel_worker.py"),
                             *map(str, args)], cwd=ROOT, env=worker_env(devices),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(procs):
    """Wait for every process; kill all on a timeout; fail with the output of any failure."""
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT)[0])
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        pytest.fail(f"worker timed out after {TIMEOUT} s")
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]


def run_worker(devices, *args):
    finish([start_worker(devices, *args)])


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def assert_trees_close(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=atol, err_msg=key)


# --------------------------------------------------------------------------- in process

def test_mesh_takes_all_devices_or_a_given_count():
    assert parallel.make_mesh().shape == {"data": jax.device_count()}
    assert parallel.make_mesh(1).devices.tolist() == [jax.devices()[0]]
    with pytest.raises(ValueError, match="expected -1 or 1.."):
        parallel.make_mesh(jax.device_count() + 1)


def test_large_arrays_split_along_a_dimension_the_mesh_divides():
    assert parallel.array_spec((3, 3, 64, 128), 8, 0) == PartitionSpec(None, None, None, "data")
    assert parallel.array_spec((4096, 21), 8, 0) == PartitionSpec("data")
    assert parallel.array_spec((3, 3, 5, 7), 8, 0) == PartitionSpec()  # nothing divides
    assert parallel.array_spec((3, 3, 64, 128), 8, 10 ** 6) == PartitionSpec()  # too small
    assert parallel.array_spec((), 8, 0) == PartitionSpec()


def test_padded_eval_batch_adds_only_void_examples():
    batch = worker.batch_of_step(0, size=3)
    batch["weight"] = np.ones((3, 32, 32), np.float32)
    padded = parallel.pad_batch(batch, 4, 255)
    assert {k: v.shape[0] for k, v in padded.items()} == {"image": 4, "label": 4, "weight": 4}
    assert np.all(padded["label"][3] == 255) and not np.any(padded["image"][3])
    assert not np.any(padded["weight"][3])
    np.testing.assert_array_equal(padded["label"][:3], batch["label"])
    assert parallel.pad_batch(batch, 3, 255)["label"].shape[0] == 3


def test_global_batch_is_split_along_the_data_axis():
    batch = parallel.global_batch(worker.batch_of_step(0, size=2), parallel.make_mesh(1))
    assert batch["image"].shape == (2, 32, 32, 1)
    assert batch["image"].sharding.spec == PartitionSpec("data")
    assert parallel.check_batch(2, parallel.make_mesh(1)) == 2  # (8 devices: in the worker)


def test_initialize_is_a_no_op_without_a_coordinator():
    assert parallel.initialize(environ={}) is False
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES"):
        parallel.initialize(environ={"JAX_COORDINATOR_ADDRESS": "localhost:1"})
    assert parallel.is_main_process()


# --------------------------------------------------------------------------- subprocesses

def parts(results):
    """``part(name, kind)``: the arrays a worker saved under ``name/kind/``, by their rest."""
    def part(name, kind):
        prefix = f"{name}/{kind}/"
        return {k[len(prefix):]: results[k] for k in results.files if k.startswith(prefix)}

    return part


def test_train_step_on_8_devices_equals_1_device_and_eval_metrics_are_identical(tmp_path):
    out = tmp_path / "steps.npz"
    run_worker(8, "equivalence", out)
    results = np.load(out)
    part = parts(results)

    assert results["eight_sharded/sharded"].any() and not results["eight/sharded"].any()
    for name in ("eight", "eight_sharded"):
        assert_trees_close(part(name, "params"), part("one", "params"))
        assert_trees_close(part(name, "train"), part("one", "train"), atol=1e-4)
        np.testing.assert_array_equal(part(name, "train")["confusion"],
                                      part("one", "train")["confusion"])
        ones, theirs = part("one", "eval"), part(name, "eval")
        np.testing.assert_array_equal(theirs["confusion"], ones["confusion"])
        assert int(theirs["pixels"]) == int(ones["pixels"])  # padding added no pixel
        summary, reference = objective.summarize(theirs), objective.summarize(ones)
        assert summary == pytest.approx(reference, rel=1e-6)
        np.testing.assert_array_equal(results[f"{name}/predictions"], results["one/predictions"])
    # one step moved the params (the comparison above is not of two untouched inits)
    start = worker.flat(worker.tiny_state().params)
    assert any(not np.allclose(v, start[k]) for k, v in part("one", "params").items())


def test_batch_norm_statistics_on_8_devices_are_those_of_the_global_batch(tmp_path):
    out = tmp_path / "batchnorm.npz"
    run_worker(8, "batchnorm", out)
    results = np.load(out)
    part = parts(results)

    assert part("one", "stats")  # the model kept statistics
    assert_trees_close(part("eight", "stats"), part("one", "stats"), atol=1e-5)
    assert_trees_close(part("eight", "params"), part("one", "params"), atol=1e-5)
    # statistics of one device's example alone differ: the match above is a real one
    share, one = part("share", "stats"), part("one", "stats")
    assert max(np.abs(share[k] - one[k]).max() for k in one) > 1e-3


def test_checkpoint_written_on_1_device_restores_on_8_and_the_reverse(tmp_path):
    state = worker.tiny_state()
    rng = np.random.default_rng(0)
    state = state.replace(step=1, params=jax.tree.map(
        lambda x: x + rng.normal(size=x.shape).astype(x.dtype), state.params))
    np.savez(tmp_path / "one.npz", **worker.flat(state.params))
    with checkpoint.make_manager(str(tmp_path / "one")) as manager:
        checkpoint.save(manager, 1, state)
        checkpoint.wait(manager)

    run_worker(8, "checkpoints", tmp_path)  # restores "one" sharded, writes "eight"

    one = parallel.make_mesh(1)
    template = worker.tiny_state()
    target = parallel.shard_state(template, parallel.state_sharding(template, one))
    with checkpoint.make_manager(str(tmp_path / "eight")) as manager:
        restored = checkpoint.restore_latest(manager, target)
    assert int(restored.step) == 2
    for key, value in worker.flat(restored.params).items():
        np.testing.assert_array_equal(value, 2 * np.load(tmp_path / "one.npz")[key])
    leaf = jax.tree.leaves(restored.params)[0]
    assert leaf.sharding.device_set == {jax.devices()[0]}


def test_two_processes_resume_from_their_checkpoint_and_match_one_process(tmp_path):
    """2 processes x 2 devices over localhost (gloo): steps 1-2, checkpoint, both exit;
    restarted, they resume for steps 3-4. One process on one device runs steps 1-4."""
    workdir = tmp_path / "run"
    port = free_port()
    first = [start_worker(2, "distributed", workdir, port, pid, 2) for pid in (0, 1)]

    mesh = parallel.make_mesh(1)  # the reference, while the workers run
    state = worker.tiny_state()
    sharding = parallel.state_sharding(state, mesh)
    state = parallel.shard_state(state, sharding)
    step_fn = parallel.jit_train_step(worker.TRAIN_STEP, mesh, sharding)
    for step in range(1, 5):
        state, _ = step_fn(state, parallel.global_batch(worker.batch_of_step(step), mesh),
                           worker.step_key())
    finish(first)
    assert checkpoint.latest_step(str(workdir)) == 2
    port = free_port()
    finish([start_worker(2, "distributed", workdir, port, pid, 4) for pid in (0, 1)])
    assert checkpoint.latest_step(str(workdir)) == 4

    distributed = np.load(workdir / "params_4.npz")
    assert_trees_close({k: distributed[k] for k in distributed.files},
                       worker.flat(state.params))
    # and the resumed run's checkpoint (4 devices, 2 processes) restores here on 1 device
    with checkpoint.make_manager(str(workdir)) as manager:
        restored = checkpoint.restore_latest(manager, state)
    assert int(restored.step) == 4
    assert_trees_close(worker.flat(restored.params), {k: distributed[k] for k in distributed.files})


def test_train_and_evaluate_on_4_devices_equals_1_device_resumes_and_restores_on_1(
        tmp_path, monkeypatch):
    """The real entry points: a 3-step run of the tiny sample on 4 devices (global batch 4)
    ends with the params and eval scores of the same run on 1 device; crashed after step 2
    and rerun, it ends as the straight run; evaluate scores its checkpoint on 4 devices; a
    batch of 5 is refused. Its checkpoints (4 devices) load here on 1, restore_params too.

    The 1-device run plays a process other than 0: it trains and checkpoints alike, but
    writes no metrics, events or images."""
    proc = start_worker(4, "train", tmp_path)
    with monkeypatch.context() as patch:  # meanwhile, here
        patch.setattr(parallel, "is_main_process", lambda: False)
        one = train.train_and_evaluate(worker.train_config(), str(tmp_path / "one"))
    finish([proc])
    assert sorted(os.listdir(tmp_path / "one")) == ["best", "checkpoints"]
    with open(tmp_path / "summaries.json") as f:
        four = json.load(f)
    assert four["devices"] == 4 and four["crashed_at"] == 2
    assert four["bad_batch"] == "global batch size 5 is not a multiple of the 4 devices of the mesh"

    params = {name: worker.flat(checkpoint.restore_params(str(tmp_path / name)))
              for name in ("one", "straight", "resumed")}
    assert_trees_close(params["straight"], params["one"])
    for key, value in params["resumed"].items():
        np.testing.assert_array_equal(value, params["straight"][key], err_msg=key)
    scores = {k: one[k] for k in (*metrics.METRICS, "loss")}
    assert {k: four["straight"][k] for k in scores} == pytest.approx(scores, rel=1e-5)
    assert four["straight"]["class_iu"] == pytest.approx(one["class_iu"], rel=1e-5)
    assert four["resumed"] == four["straight"]
    assert {k: four["scored"][k] for k in scores} == pytest.approx(scores, rel=1e-5)

    # process 0 of 4 devices: every log and eval written once
    records = reporting.read_metrics(str(tmp_path / "straight"))
    assert [(r["step"], r["mode"]) for r in records] == [
        (1, "train"), (2, "train"), (2, "eval"), (3, "train"), (3, "eval")]
    assert os.path.isfile(tmp_path / "straight" / "predictions_000003.png")

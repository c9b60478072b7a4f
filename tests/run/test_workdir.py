"""fcnjax.run.workdir: one run per workdir (run.lock) and the run's config kept in config.json."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from configs import sample
from fcnjax.run import workdir as wd
from fcnjax.run.errors import ConfigError, user_errors

REPO = pathlib.Path(__file__).resolve().parents[2]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def write_lock(folder: pathlib.Path, **fields) -> pathlib.Path:
    """A lock file in ``folder`` as another run would write it, with ``fields`` changed."""
    body = wd.lock_body("someone-elses-token", 30.0, wd.machine())
    body.update(command="python -m fcnjax.train --config configs/sample.py", **fields)
    path = folder / wd.LOCK_NAME
    path.write_bytes(wd.encode(body))
    return path


def holder_of(folder: pathlib.Path) -> dict:
    return json.loads((folder / wd.LOCK_NAME).read_text())


def leftovers(folder: pathlib.Path) -> list[str]:
    """Temp, claim and aside files the lock left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name != wd.LOCK_NAME)


# ------------------------------------------------------------------------------ the lock


def test_lock_file_holds_the_run(tmp_path):
    with wd.RunLock(tmp_path, heartbeat_s=60) as lock:
        body = holder_of(tmp_path)
        assert lock.held and body["token"] == lock.token
        assert body["pid"] == os.getpid() and body["host"] == socket.gethostname()
        assert body["heartbeat_s"] == 60 and abs(body["started"] - time.time()) < 60
        assert "pytest" in body["command"] or "python" in body["command"]
        assert leftovers(tmp_path) == []
    assert not (tmp_path / wd.LOCK_NAME).exists()


def test_second_lock_refused_naming_the_holder(tmp_path):
    with wd.RunLock(tmp_path, heartbeat_s=60), pytest.raises(wd.WorkdirInUse) as caught:
        wd.RunLock(tmp_path).acquire()
    message = str(caught.value)
    assert message.startswith(f"workdir {tmp_path} is in use by another run (pid {os.getpid()}"
                              f" on host {socket.gethostname()}, started 20")
    assert "command " in message
    assert message.endswith("wait for it to finish, or pass another --workdir")
    assert "\n" not in message
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, user_errors())
    with wd.RunLock(tmp_path):  # released: the workdir is free again
        pass


def test_lock_released_on_exception(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), wd.RunLock(tmp_path, heartbeat_s=60):
        raise RuntimeError("boom")
    assert not (tmp_path / wd.LOCK_NAME).exists() and leftovers(tmp_path) == []


def test_disabled_lock_does_nothing(tmp_path):
    write_lock(tmp_path)  # even a live holder: process 1+ of a run do not look
    with wd.RunLock(tmp_path, enabled=False) as lock:
        assert not lock.held
    assert holder_of(tmp_path)["token"] == "someone-elses-token"


def test_bad_heartbeat_period():
    with pytest.raises(ConfigError, match="heartbeat_s"):
        wd.RunLock("/tmp/x", heartbeat_s=0)


def test_stale_lock_of_a_dead_pid_taken_over(tmp_path):
    pid = dead_pid()
    write_lock(tmp_path, pid=pid)
    notes = []
    with wd.RunLock(tmp_path, heartbeat_s=60, note=notes.append) as lock:
        assert holder_of(tmp_path)["token"] == lock.token
    assert len(notes) == 1 and notes == [lock.took_over]
    assert f"taking over the stale lock of another run (pid {pid} on host" in notes[0]
    assert notes[0].endswith(f"its process {pid} is gone") and "\n" not in notes[0]
    assert leftovers(tmp_path) == []


def test_lock_of_this_pid_left_by_an_earlier_process_taken_over(tmp_path):
    write_lock(tmp_path, pid=os.getpid())  # a container restarted: the same pid again
    notes = []
    with wd.RunLock(tmp_path, note=notes.append):
        pass
    assert "left by an earlier process with this pid" in notes[0]


def test_live_pid_on_this_machine_refused_even_with_an_old_heartbeat(tmp_path):
    write_lock(tmp_path, pid=os.getppid(), heartbeat=time.time() - 10_000)
    with pytest.raises(wd.WorkdirInUse, match=f"pid {os.getppid()} "):
        wd.RunLock(tmp_path).acquire()


@pytest.mark.parametrize("elsewhere", [{"host": "node-17"},
                                       {"pidns": "pid:[1]"},      # another container
                                       {"boot_id": "another-boot"}])
def test_lock_from_another_machine_goes_by_its_heartbeat(tmp_path, elsewhere):
    pid = dead_pid()  # meaningless there: a dead pid here does not make it stale
    write_lock(tmp_path, pid=pid, heartbeat=time.time() - 20, heartbeat_s=30.0, **elsewhere)
    with pytest.raises(wd.WorkdirInUse) as caught:
        wd.RunLock(tmp_path).acquire()
    host = elsewhere.get("host", socket.gethostname())
    assert f"(pid {pid} on host {host}, started " in str(caught.value)
    assert "last heartbeat 20 s ago" in str(caught.value)

    write_lock(tmp_path, pid=pid, heartbeat=time.time() - 200, heartbeat_s=30.0, **elsewhere)
    notes = []
    with wd.RunLock(tmp_path, note=notes.append) as lock:
        assert holder_of(tmp_path)["token"] == lock.token
    assert notes[0].endswith("its last heartbeat was 200 s ago")


def test_unreadable_lock_refused_while_new_taken_over_when_old(tmp_path):
    path = tmp_path / wd.LOCK_NAME
    path.write_text("{half a")
    with pytest.raises(wd.WorkdirInUse, match="run.lock unreadable"):
        wd.RunLock(tmp_path).acquire()
    old = time.time() - 10 * wd.STALE_PERIODS * wd.HEARTBEAT_S
    os.utime(path, (old, old))
    notes = []
    with wd.RunLock(tmp_path, note=notes.append):
        pass
    assert "its last heartbeat was" in notes[0]


def test_heartbeat_refreshed_and_lost_lock_noticed(tmp_path):
    notes = []
    with wd.RunLock(tmp_path, heartbeat_s=0.05, note=notes.append) as lock:
        first = holder_of(tmp_path)["heartbeat"]
        deadline = time.time() + 5
        while holder_of(tmp_path)["heartbeat"] == first and time.time() < deadline:
            time.sleep(0.02)
        assert holder_of(tmp_path)["heartbeat"] > first
        lock.check()  # still ours
        write_lock(tmp_path)  # another run took it over
        deadline = time.time() + 5
        while lock.lost is None and time.time() < deadline:
            time.sleep(0.02)
        assert "taken over by another run" in lock.lost and notes[0].startswith("warning: ")
        with pytest.raises(wd.WorkdirInUse, match="while this run held it"):
            lock.check()
    assert holder_of(tmp_path)["token"] == "someone-elses-token"  # theirs: not removed


def test_takers_of_one_stale_lock_cannot_both_win(tmp_path):
    write_lock(tmp_path, pid=dead_pid())
    start = threading.Barrier(6)
    won, refused, notes = [], [], []

    def take():
        lock = wd.RunLock(tmp_path, heartbeat_s=60, note=notes.append)
        start.wait()
        try:
            lock.acquire()
        except wd.WorkdirInUse as error:
            refused.append(str(error))
        else:
            won.append(lock)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 5
    assert len(notes) <= 1  # a run starting meanwhile may take the freed workdir first
    assert holder_of(tmp_path)["token"] == won[0].token
    won[0].release()
    assert leftovers(tmp_path) == []


def test_take_over_keeps_a_lock_that_changed_since_judged(tmp_path):
    path = write_lock(tmp_path, pid=dead_pid())
    stale = path.read_bytes()
    write_lock(tmp_path, heartbeat=time.time() + 1)  # a heartbeat (or a new run) came
    fresh = path.read_bytes()
    assert not wd.take_over(str(path), stale, "me")
    assert path.read_bytes() == fresh and leftovers(tmp_path) == []
    assert wd.take_over(str(path), fresh, "me") and not path.exists()


def test_take_over_waits_for_another_taker_but_not_for_a_dead_one(tmp_path):
    path = write_lock(tmp_path, pid=dead_pid())
    claim = tmp_path / (wd.LOCK_NAME + ".takeover")
    claim.write_text("another-taker")
    assert not wd.take_over(str(path), path.read_bytes(), "me") and path.exists()
    old = time.time() - 2 * wd.CLAIM_STALE_S
    os.utime(claim, (old, old))
    assert not wd.take_over(str(path), path.read_bytes(), "me")  # removes the dead claim
    assert not claim.exists()
    assert wd.take_over(str(path), path.read_bytes(), "me") and not path.exists()


CHILD = """
import sys, time
from fcnjax.run.workdir import RunLock
lock = RunLock(sys.argv[1], heartbeat_s=0.2).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_lock_of_a_second_process_refused_then_stale_once_killed(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(wd.WorkdirInUse) as caught:
            wd.RunLock(tmp_path).acquire()
        assert f"(pid {child.pid} on host {socket.gethostname()}, started " in str(caught.value)
        assert f"command {sys.executable} -c " in str(caught.value)  # its command line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert (tmp_path / wd.LOCK_NAME).exists()  # SIGKILL leaves it behind
    notes = []
    with wd.RunLock(tmp_path, note=notes.append) as lock:
        assert holder_of(tmp_path)["token"] == lock.token
    assert notes[0].endswith(f"its process {child.pid} is gone")


def test_stale_reason_is_pure():
    here = {"host": "h", "boot_id": "b", "pidns": "p"}
    holder = {"pid": 5, **here, "token": "t", "heartbeat": 100.0, "heartbeat_s": 10.0}
    assert wd.stale_reason(holder, here, 1e9, 1, alive=lambda pid: True) is None
    assert wd.stale_reason(holder, here, 0, 1, alive=lambda pid: False) == (
        "its process 5 is gone")
    assert wd.stale_reason(holder, here, 0, 5, held={"t"}) is None
    elsewhere = {**here, "host": "g"}
    assert wd.stale_reason(holder, elsewhere, 100 + 40, 1) is None
    assert wd.stale_reason(holder, elsewhere, 100 + 41, 1) == "its last heartbeat was 41 s ago"


# ---------------------------------------------------------------------------- the config


def test_same_config_resumes(tmp_path):
    path = wd.save_config(tmp_path, sample.get_config())
    assert path == os.path.join(tmp_path, "config.json")
    saved = json.loads(pathlib.Path(path).read_text())
    assert saved["optim"]["learning_rate"] == 0.05 and saved["input"]["crop_size"] == [64, 64]
    assert wd.check_resume(tmp_path, sample.get_config(), allow_changes=False) == []
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # no temp file left


def test_nothing_to_compare_without_a_saved_config(tmp_path):
    assert wd.check_resume(tmp_path, sample.get_config()) == []


def test_learning_rate_change_refused(tmp_path):
    wd.save_config(tmp_path, sample.get_config())
    config = sample.get_config()
    config.optim.learning_rate = 0.1
    with pytest.raises(wd.ConfigChanged) as caught:
        wd.check_resume(tmp_path, config, allow_changes=False)
    message = str(caught.value)
    assert f"workdir {tmp_path} holds a run with another config" in message
    assert "optim.learning_rate 0.05 -> 0.1" in message
    assert message.endswith(f"or {wd.ALLOW_FLAG} to resume with the changes")
    assert "--config.train.allow_config_change=True" in message and "\n" not in message
    assert isinstance(caught.value, ConfigError)


def test_resumable_fields_may_change(tmp_path):
    wd.save_config(tmp_path, sample.get_config())
    config = sample.get_config()
    config.train.steps = 800
    config.input.workers = 2
    changes = wd.check_resume(tmp_path, config, allow_changes=False)
    assert changes == [wd.Change("input.workers", 0, 2), wd.Change("train.steps", 400, 800)]
    assert {"train.steps", "eval.num_draw", "input.check_data"} <= wd.RESUMABLE_FIELDS


def test_allow_changes_resumes_anyway(tmp_path):
    wd.save_config(tmp_path, sample.get_config())
    config = sample.get_config()
    config.optim.learning_rate = 0.1
    changes = wd.check_resume(tmp_path, config, allow_changes=True)
    assert changes == [wd.Change("optim.learning_rate", 0.05, 0.1)]
    assert wd.describe_changes(changes) == "optim.learning_rate 0.05 -> 0.1"


def test_many_changes_listed_briefly(tmp_path):
    wd.save_config(tmp_path, sample.get_config())
    config = sample.get_config()
    config.seed = 1
    config.optim.momentum = 0.5
    config.train.batch_size = 8
    config.model.features = 32
    config.model.levels = 3
    config.input.flip = False
    config.loss.reduction = "sum"
    config.input.mean = (0.5,)
    with pytest.raises(wd.ConfigChanged) as caught:
        wd.check_resume(tmp_path, config)
    message = str(caught.value)
    assert "input.flip True -> False" in message and "input.mean [127.5] -> [0.5]" in message
    assert "loss.reduction 'mean' -> 'sum'" in message and " and 2 more: " in message


def test_tuples_and_lists_are_equal(tmp_path):
    wd.save_config(tmp_path, {"input": {"crop_size": (64, 64), "mean": ((1, 2), [3])}})
    assert wd.load_config(tmp_path) == {"input": {"crop_size": [64, 64], "mean": [[1, 2], [3]]}}
    new = {"input": {"crop_size": [64, 64], "mean": [(1, 2), (3,)]}}
    assert wd.check_resume(tmp_path, new) == []
    assert wd.check_resume(tmp_path, {"input": {"crop_size": [64, 64, 1],
                                                "mean": [[1, 2], [3]]}}, True) == [
        wd.Change("input.crop_size", [64, 64], [64, 64, 1])]


def test_fields_another_fcnjax_version_adds_or_drops_are_reported_not_refused(tmp_path):
    """A run saved before an upgrade added config.init.caffe_vgg16 must resume after it."""
    wd.save_config(tmp_path, {"model": {"name": "unet", "features": 16}})
    changes = wd.check_resume(tmp_path, {"model": {"name": "unet", "depth": 4,
                                                   "features": 16}})
    assert changes == [wd.Change("model.depth", wd.UNSET, 4)]
    with pytest.raises(wd.ConfigChanged, match=r"model.features 16 -> 8"):
        wd.check_resume(tmp_path, {"model": {"name": "unet", "depth": 4, "features": 8}})


def test_odd_values_saved_as_text_and_bools_not_numbers(tmp_path):
    wd.save_config(tmp_path, {"model": {"dtype": np.dtype("float32"), "flag": True}})
    assert wd.load_config(tmp_path) == {"model": {"dtype": "float32", "flag": True}}
    assert wd.check_resume(tmp_path, {"model": {"dtype": np.dtype("float32"), "flag": True}}) == []
    with pytest.raises(wd.ConfigChanged, match="model.flag True -> 1"):
        wd.check_resume(tmp_path, {"model": {"dtype": "float32", "flag": 1}})
    assert wd.same(1, 1.0) and wd.same(float("nan"), float("nan")) and not wd.same(0, False)


def test_unreadable_saved_config(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2")
    with pytest.raises(ConfigError, match="config.json is not JSON .*remove it"):
        wd.check_resume(tmp_path, {"a": 1})

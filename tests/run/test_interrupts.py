"""SIGINT and SIGTERM stop a run cleanly (fcnjax.run.interrupts): the handlers set a flag and come
back; a real training run saves the step it was at, says so in one line and resumes from it;
a signal while the first step compiles ends the process at once, with no crash."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from fcnjax.run import interrupts

ROOT = pathlib.Path(__file__).parents[2]
SIGNALS = (signal.SIGINT, signal.SIGTERM)


PYTHON = [sys.executable, "-c", "import os, signal, sys; "
          "signal.signal(signal.SIGINT, signal.SIG_DFL); "
          "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"]
"""``python`` for every subprocess these tests signal: SIGINT at its default, whatever this
process was given (a background job of a script inherits SIGINT ignored, and Python then
installs no handler for StopRequests to take over). An exec, not a ``preexec_fn``: no fork
of this multithreaded process."""


@pytest.fixture(autouse=True)
def python_sigint_handler():
    """Each test starts as a foreground ``python`` does: SIGINT to KeyboardInterrupt, even
    when this process inherited it ignored (``pytest &`` in a script)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def wakeup_fd():
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_signal_sets_the_flag_and_the_handlers_come_back():
    handlers, fd = {s: signal.getsignal(s) for s in SIGNALS}, wakeup_fd()
    with interrupts.StopRequests() as stop:
        assert all(signal.getsignal(s) is not handlers[s] for s in SIGNALS)
        with stop:  # reentrant: a caller's instance handed to the loop
            stop.started()
            assert not stop.requested
            os.kill(os.getpid(), signal.SIGTERM)
            wait_for(lambda: stop.requested)
        assert signal.getsignal(signal.SIGTERM) is not handlers[signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in SIGNALS} == handlers and wakeup_fd() == fd
    assert stop.signum == signal.SIGTERM and stop.count == 1 and stop.should_stop()
    error = stop.interrupted(12, "W/checkpoints")
    assert not isinstance(error, Exception)  # as KeyboardInterrupt: `except Exception` won't
    assert error.exit_status == 143 and error.step == 12
    assert str(error) == ("interrupted by SIGTERM at step 12; saved a checkpoint of step 12 in "
                          "W/checkpoints; rerun the same command to resume")


def test_outside_the_main_thread_nothing_is_installed():
    handlers, seen = {s: signal.getsignal(s) for s in SIGNALS}, []

    def enter():
        with interrupts.StopRequests():
            seen.append({s: signal.getsignal(s) for s in SIGNALS})

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen == [handlers]


ESCALATE = """
import os, signal, sys, time
from fcnjax.run import interrupts
with interrupts.StopRequests(int(sys.argv[2]),
                             exit_while_compiling=sys.argv[1] != "patient") as stop:
    stop.at_exit(lambda: print("released", flush=True))
    if sys.argv[1] == "started":
        stop.started()
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
print("not reached")
"""


WAIT_THEN_EXIT = ["saving a checkpoint before stopping, please wait",
                  "interrupted by SIGINT again: exiting at once"]


@pytest.mark.parametrize("phase,start,status,lines", [
    ("started", 0, 130, WAIT_THEN_EXIT),
    ("patient", 0, 130, WAIT_THEN_EXIT),  # exit_while_compiling=False: as once started
    ("compiling", 0, 130, [("interrupted by SIGINT while compiling; nothing was trained "
                            "yet, nothing to save")]),
    ("compiling", 40, 130, [("interrupted by SIGINT while compiling; nothing was trained "
                             "since the checkpoint of step 40, nothing to save")]),
])
def test_a_second_signal_says_wait_a_third_or_one_while_compiling_exits_at_once(
        phase, start, status, lines):
    run = subprocess.run([*PYTHON, "-c", ESCALATE, phase, str(start)], cwd=ROOT,
                         capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == status and run.stdout == "released\n"
    said = [line for line in run.stderr.splitlines() if line]
    assert len(said) == len(lines), run.stderr
    for line, wanted in zip(said, lines):
        assert line.startswith(f"fcnjax.train: {wanted}")



def test_the_signalled_subprocesses_do_not_inherit_an_ignored_sigint():
    """As in ``pytest -n 2 &`` from a script: SIGINT ignored here must not reach the child."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        test_a_second_signal_says_wait_a_third_or_one_while_compiling_exits_at_once(
            "compiling", 0, 130, ["interrupted by SIGINT while compiling; nothing was "
                                  "trained yet, nothing to save"])
    finally:
        signal.signal(signal.SIGINT, previous)

def tiny_config(steps):
    """The sample shrunk (a 2-level, 4-channel U-Net on 32x32 crops), evaluating every 2
    steps, checkpointing only at the end."""
    from configs import sample

    config = sample.get_config()
    config.model.update(features=4, levels=2)
    config.train.update(steps=steps, batch_size=2, log_every=1, eval_every=2,
                        checkpoint_every=100)
    config.input.crop_size = (32, 32)
    return config


@pytest.mark.parametrize("during,stopped_at,evaluated", [
    ("eval", 2, [2]),     # the evaluation under way finishes, then the step is saved
    ("batch", 4, [2]),    # an evaluation not yet begun (step 4's) is skipped
])
def test_the_loop_saves_the_step_a_signal_came_in_and_raises_interrupted(
        tmp_path, monkeypatch, during, stopped_at, evaluated):
    from fcnjax import train
    from fcnjax.data import pipeline
    from fcnjax.run import checkpoint

    if during == "eval":
        original = train.log_eval

        def log_eval(config, reporter, step, *args):
            os.kill(os.getpid(), signal.SIGTERM)
            return original(config, reporter, step, *args)

        monkeypatch.setattr(train, "log_eval", log_eval)
    else:
        batches = pipeline.train_batches

        def train_batches(*args, **kwargs):
            for step, batch in enumerate(batches(*args, **kwargs), start=1):
                if step == stopped_at:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.2)  # the watcher thread's turn
                yield batch

        monkeypatch.setattr(pipeline, "train_batches", train_batches)
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    with pytest.raises(interrupts.Interrupted, match=f"at step {stopped_at}; saved") as raised:
        train.train_and_evaluate(tiny_config(steps=6), str(tmp_path))
    assert raised.value.step == stopped_at and raised.value.exit_status == 143
    assert {s: signal.getsignal(s) for s in SIGNALS} == handlers
    assert os.listdir(tmp_path / "checkpoints") == [str(stopped_at)]
    assert checkpoint.latest_step(str(tmp_path)) == stopped_at
    records = [json.loads(line) for line in
               (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["mode"] == "eval"] == evaluated
    assert [r["step"] for r in records if r["mode"] == "train"] == list(range(1, stopped_at + 1))


class Run:
    """``python -m fcnjax.train`` in a subprocess, its output gathered as it comes; no
    compilation cache, so that every run compiles (the tests signal it while it does)."""

    def __init__(self, workdir, *overrides, config="configs/sample.py"):
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [*PYTHON, "-m", "fcnjax.train", "--config", config, "--workdir",
             str(workdir), "--config.compile_cache=", *overrides], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.out, self.err = bytearray(), bytearray()
        self.pumps = [threading.Thread(target=self.pump, args=(f, b)) for f, b in
                      ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def pump(stream, buffer):
        while chunk := stream.read1(65536):
            buffer.extend(chunk)

    def wait_for(self, condition, timeout=120):
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"ended early: {self.text()}"
            assert time.monotonic() < deadline, f"timed out: {self.text()}"
            time.sleep(0.05)

    def signal(self, signum):
        self.process.send_signal(signum)
        self.signalled = time.monotonic()

    def finish(self, timeout=120):
        self.process.wait(timeout)
        for pump in self.pumps:
            pump.join()
        self.ended = time.monotonic()
        return self.process.returncode, self.out.decode(), self.err.decode()

    def text(self):
        return self.out.decode() + self.err.decode()


SMALL = ["--config.train.checkpoint_every=1000", "--config.train.eval_every=1000",
         "--config.model.features=4", "--config.model.levels=2", "--config.train.log_every=5"]


def train_records(workdir):
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return [r for r in lines if r["mode"] == "train"]


def test_sigterm_saves_the_step_it_was_at_and_a_rerun_resumes_from_it(tmp_path):
    workdir = tmp_path / "w"
    run = Run(workdir, "--config.train.steps=400", *SMALL)
    run.wait_for(lambda: train_records(workdir))
    run.signal(signal.SIGTERM)
    status, out, err = run.finish()
    assert status == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    said = re.findall(r"interrupted by SIGTERM at step (\d+); saved a checkpoint of step "
                      r"(\d+) in (\S+); rerun the same command to resume", err)
    assert len(said) == 1, err
    step, saved, where = said[0]
    assert step == saved and where == str(workdir / "checkpoints")
    step = int(step)
    assert 5 <= step < 400 and os.listdir(workdir / "checkpoints") == [str(step)]
    assert max(r["step"] for r in train_records(workdir)) <= step

    rerun = Run(workdir, f"--config.train.steps={step + 3}", *SMALL)
    status, out, err = rerun.finish()
    assert status == 0, err
    assert f"resuming from the checkpoint of step {step}" in out + err
    assert sorted(map(int, os.listdir(workdir / "checkpoints"))) == [step, step + 3]
    assert train_records(workdir)[-1]["step"] == step + 3


@pytest.mark.parametrize("after", ["progress bar", "first line"])
def test_sigint_while_compiling_exits_at_once_with_one_line(tmp_path, after):
    """The full sample's U-Net: its first step compiles for seconds. "progress bar": the
    loop's own compilation; "first line" (the label statistics, printed before the model is
    built): the start-up's, as the issue reported it (a segfault, exit 139)."""
    run = Run(tmp_path / "w")
    if after == "progress bar":
        run.wait_for(lambda: b"train step 0/" in run.err)
        time.sleep(0.3)
    else:
        run.wait_for(lambda: b"train labels" in run.out)
        time.sleep(1.0)
    run.signal(signal.SIGINT)
    status, _, err = run.finish(timeout=30)
    assert status == 128 + signal.SIGINT, err
    assert run.ended - run.signalled < 5
    assert "Traceback" not in err and "Fatal Python error" not in err
    assert err.rstrip().splitlines()[-1] == ("fcnjax.train: interrupted by SIGINT while "
                                             "compiling; nothing was trained yet, nothing to "
                                             "save")
    assert not os.path.isdir(tmp_path / "w" / "checkpoints") or not os.listdir(
        tmp_path / "w" / "checkpoints")

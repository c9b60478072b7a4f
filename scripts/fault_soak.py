"""Fault soak: a training workdir hit by kills, stops and damaged checkpoints ends as if
nothing had happened.

    python scripts/fault_soak.py --cycles 30 --out /tmp/fault_soak

1. Reference: one uninterrupted short sample run (``RUN_FLAGS``: a 4-channel, 2-level U-Net
   on the shipped ISBI sample, ``--steps`` steps, a checkpoint every 3) in ``DIR/reference``.
2. Soak: ``--cycles`` cycles on ``DIR/soak``, each starting the same command and injecting
   one fault, in a seeded random order (``--seed``):

   - ``sigkill``: SIGKILL at a random time, in the start-up (a quarter of them) or in training;
   - ``sigkill-in-save``: SIGKILL while orbax writes a checkpoint, i.e. while its
     ``checkpoints/<step>.orbax-checkpoint-tmp`` folder is there (a third of the SIGKILLs);
   - ``sigterm``: SIGTERM at a random time; the run must exit 143 with a checkpoint of the
     step it reached (or at once, with nothing to save, while it compiles), or 0 if it
     had finished;
   - ``damage``: the run is stopped by SIGTERM once it has saved a new checkpoint, then the
     newest checkpoint is damaged one of the ways of tests/test_checkpoint_faults.py (each
     kind at least once when there are 5 damage cycles or more); a later run must move it
     aside to ``<step>.corrupt`` and resume from the one before.

   A training-time fault lands at most about ``reach`` steps into the run, ``reach`` chosen
   so the soak's faults spread over the whole run.
3. Final: reruns until one finishes (exit 0), then compares with the reference: the final
   parameters (``checkpoint.restore_params``), the last eval record, and the history:
   ``metrics.jsonl`` must hold one record per (step, mode, split), the reference's keys, and
   the reference's values (every field but the wall-clock ``steps_per_second`` and
   ``images_per_second``; floats must be equal: the same program on the same data).
4. Prints a table and writes it, with every cycle's record, to ``DIR/soak.json``; every run's
   output is kept in ``DIR/logs``. Exit status 1 when the parameters differ, records are
   lost or duplicated, or fcnjax's code (``CODE``) changed while the soak ran: the soak
   tests one version, so run it on a tree nobody edits meanwhile (a copy: the runs import
   the fcnjax beside this script).

Every process uses JAX's persistent compilation cache in ``DIR/jax_cache``, so the cycles
are not spent compiling; the reference fills it. The fault schedule and the random delays
repeat with the seed; where the faults land depends on the machine's speed as well.
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import json
import math
import os
import pathlib
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "sample.py")
STEPS = 60
CHECKPOINT_EVERY = 3
RUN_FLAGS = ("--config.model.features=4", "--config.model.levels=2",
             f"--config.train.checkpoint_every={CHECKPOINT_EVERY}",
             "--config.train.eval_every=6", "--config.train.log_every=3",
             "--config.train.max_to_keep=3", "--config.prng_impl=rbg")
TIMING_FIELDS = ("steps_per_second", "images_per_second")  # wall-clock: differ run to run
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax writes <step>.orbax-checkpoint-tmp, then renames
START_UP_SHARE = 0.25   # of the random-time signals, the share aimed at the start-up
SAVE_DELAY_S = 0.3      # a kill in a save comes up to this long after its folder appears
HANG_S = 300.0          # a run that takes longer than this to do what it must is hung
FINAL_ATTEMPTS = 3      # reruns at the end before giving up on finishing the run
POLL_S = 0.02
SAVE_POLL_S = 0.002
BAR = re.compile(rb"train step (\d+)/\d+")
STOPPED = re.compile(r"interrupted by SIGTERM at step (\d+); saved a checkpoint of step (\d+)")
RESUMED = re.compile(r"resuming from the checkpoint of step (\d+)")
# Exit statuses each kind of run may end with (negative: killed by that signal). A SIGTERM
# in the first seconds, before fcnjax.train has installed its handlers (Python start-up,
# imports, flags), kills the process by the signal's default action: -15, nothing written.
EXPECTED = {"sigkill": (-signal.SIGKILL, 0), "sigkill-in-save": (-signal.SIGKILL, 0),
            "sigterm": (128 + signal.SIGTERM, 0, -signal.SIGTERM),
            "damage": (128 + signal.SIGTERM, 0), "final": (0,), "reference": (0,)}
CODE = ("fcnjax/**/*.py", "configs/*.py")  # what a training run executes, for code_fingerprint


# ------------------------------------------------------------------------ the command


def code_fingerprint() -> str:
    """A hash of the fcnjax and config sources the runs execute: a soak is a test of one
    version, so it must not change while the soak runs (run it on a copy of the tree)."""
    digest = hashlib.sha256()
    for pattern in CODE:
        for path in sorted(ROOT.glob(pattern)):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def git_commit() -> str:
    """The commit of the tree the soak runs (with " + changes" when it is edited), or ""."""
    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             check=False)
        return run.stdout.strip() if run.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    return commit + (" + changes" if commit and git("status", "--porcelain", "--", *CODE)
                     else "")



def train_command(workdir: pathlib.Path, steps: int) -> list[str]:
    """``python -m fcnjax.train`` of the soak's short sample run in ``workdir``."""
    return [sys.executable, "-m", "fcnjax.train", "--config", CONFIG, "--workdir",
            str(workdir), *RUN_FLAGS, f"--config.train.steps={steps}"]


def soak_env(cache: pathlib.Path) -> dict[str, str]:
    """The environment of every run: unbuffered output and JAX's persistent compilation
    cache in ``cache`` (every compilation kept, however quick)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


class Run:
    """One training process, its output gathered as it comes and saved as
    ``<log>.out`` and ``<log>.err`` when it ends."""

    def __init__(self, command: list[str], env: dict[str, str], log: pathlib.Path):
        self.log, self.began = log, time.monotonic()
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
        self.out, self.err = bytearray(), bytearray()
        self.pumps = [threading.Thread(target=self._pump, args=pair, daemon=True)
                      for pair in ((self.process.stdout, self.out),
                                   (self.process.stderr, self.err))]
        for pump in self.pumps:
            pump.start()
        self.first_step: int | None = None    # the progress bar's first step (the start)
        self.trained_at: float | None = None  # seconds to the bar's first advance
        self.last_step: tuple[float, int] | None = None  # (seconds, step) of its last one
        self._parsed = 0

    @staticmethod
    def _pump(stream: Any, buffer: bytearray) -> None:
        while chunk := stream.read1(65536):
            buffer.extend(chunk)

    def seconds(self) -> float:
        """Seconds since the process started."""
        return time.monotonic() - self.began

    def read_bar(self) -> None:
        """Note the steps the progress bar has shown since the last look, and when."""
        start = max(0, self._parsed - 40)  # a bar update may have been cut by the last read
        end = len(self.err)
        for match in BAR.finditer(bytes(self.err[start:end])):
            step = int(match.group(1))
            if self.first_step is None:
                self.first_step = step
            elif step > self.first_step and self.trained_at is None:
                self.trained_at = self.seconds()
            if self.trained_at is not None and (self.last_step is None
                                                or step > self.last_step[1]):
                self.last_step = (self.seconds(), step)
        self._parsed = end

    def training(self) -> bool:
        """Whether the progress bar has moved past the step the run started from: the
        first step is compiled and done, a signal is now a stop request."""
        self.read_bar()
        return self.trained_at is not None

    def wait_for(self, condition: Callable[[], bool], seconds: float,
                 poll: float = POLL_S) -> str:
        """Poll ``condition`` for up to ``seconds``: "met", "ended" (the process ended
        first) or "timeout"."""
        deadline = time.monotonic() + seconds
        while True:
            if condition():
                return "met"
            if self.process.poll() is not None:
                return "ended"
            if time.monotonic() >= deadline:
                return "timeout"
            time.sleep(poll)

    def send(self, signum: int) -> float:
        """Send ``signum`` to the process (if it still runs); the seconds since its start."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.seconds()

    def finish(self, timeout: float = HANG_S) -> tuple[int, bool]:
        """Wait for the end: (exit status, whether it hung: then it was killed)."""
        hung = False
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            hung = True
            self.process.kill()
            self.process.wait()
        for pump in self.pumps:
            pump.join()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.with_suffix(".out").write_bytes(bytes(self.out))
        self.log.with_suffix(".err").write_bytes(bytes(self.err))
        return self.process.returncode, hung

    def text(self) -> str:
        """Everything it printed, stdout then stderr."""
        return self.out.decode(errors="replace") + "\n" + self.err.decode(errors="replace")


# ------------------------------------------------------------- looking at a workdir


def checkpoint_folder(workdir: pathlib.Path) -> pathlib.Path:
    return workdir / "checkpoints"


def entries(folder: pathlib.Path, wanted: Callable[[str], bool]) -> set[tuple[str, int, int]]:
    """(name, inode, ctime) of the folders in ``folder`` whose names are ``wanted``: a
    folder removed and made again under the same name is another entry."""
    found = set()
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                if wanted(entry.name):
                    with_stat = entry.stat(follow_symlinks=False)
                    found.add((entry.name, with_stat.st_ino, with_stat.st_ctime_ns))
    except OSError:  # not made yet, or an entry renamed while listed
        pass
    return found


def step_folders(workdir: pathlib.Path) -> set[tuple[str, int, int]]:
    """The committed checkpoints (``<step>`` folders) of ``workdir``."""
    return entries(checkpoint_folder(workdir), str.isdigit)


def saves_under_way(workdir: pathlib.Path) -> set[tuple[str, int, int]]:
    """The checkpoints orbax is writing (or left half-written): its temporary folders."""
    return entries(checkpoint_folder(workdir), lambda name: TMP_SUFFIX in name)


def newest_step(workdir: pathlib.Path) -> int:
    """The step of the newest ``<step>`` folder (0 when there is none)."""
    return max((int(name) for name, _, _ in step_folders(workdir)), default=0)


def moved_aside(workdir: pathlib.Path) -> list[str]:
    """The checkpoints a run moved aside as damaged (``<step>.corrupt``, ``.corrupt.1``)."""
    return sorted(os.path.basename(p) for p in
                  glob.glob(str(checkpoint_folder(workdir) / "*.corrupt*")))


# ------------------------------------------------------------------------- damages


def largest_data_file(step_dir: pathlib.Path) -> pathlib.Path:
    """The biggest data file of the state's ocdbt store: array bytes."""
    found = glob.glob(str(step_dir / "default" / "ocdbt.process_*" / "d" / "*"))
    return pathlib.Path(max(found, key=os.path.getsize))


def flip_bytes(step_dir: pathlib.Path) -> None:
    """Invert 8 bytes in the middle of the largest data file."""
    path = largest_data_file(step_dir)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))


def truncate(path: pathlib.Path, keep: float = 0.5) -> None:
    """Cut ``path`` to ``keep`` of its size."""
    os.truncate(path, int(os.path.getsize(path) * keep))


DAMAGES: dict[str, Callable[[pathlib.Path], None]] = {
    "flipped data bytes": flip_bytes,
    "manifest.ocdbt removed": lambda d: os.remove(d / "default" / "manifest.ocdbt"),
    "_METADATA truncated": lambda d: truncate(d / "default" / "_METADATA"),
    "array_metadatas truncated": lambda d: truncate(
        d / "default" / "array_metadatas" / "process_0"),
    "data file truncated": lambda d: truncate(largest_data_file(d)),
}


def damage_newest(workdir: pathlib.Path, kind: str, damaged: set[int]) -> dict[str, Any]:
    """Damage the newest checkpoint of ``workdir`` as ``DAMAGES[kind]`` does, unless this
    soak damaged that very folder before (``damaged``: inodes, updated). What was done."""
    folders = sorted(step_folders(workdir), key=lambda entry: int(entry[0]))
    if not folders:
        return {"damaged_step": None, "damage_note": "no checkpoint to damage"}
    name, inode, _ = folders[-1]
    if inode in damaged:
        return {"damaged_step": None, "damage_note": f"checkpoint {name} is damaged already"}
    try:
        DAMAGES[kind](checkpoint_folder(workdir) / name)
    except OSError as e:
        return {"damaged_step": None, "damage_note": f"could not damage {name}: {e}"}
    damaged.add(inode)
    return {"damaged_step": int(name)}


# ------------------------------------------------------------------------ the plan


def schedule(cycles: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(family, damage kind or "") of each cycle, in a random order: about a fifth damages
    (at least one, every kind once from 5 on), the rest half SIGKILL (a third of them in a
    save) and half SIGTERM."""
    damages = max(1, min(cycles // 3, max(len(DAMAGES), round(0.2 * cycles))))
    rest = cycles - damages
    kills = (rest + 1) // 2
    in_save = round(kills / 3)
    kinds = list(DAMAGES)
    drawn = [kinds[i] for _ in range(math.ceil(damages / len(kinds)))
             for i in rng.permutation(len(kinds))][:damages]
    plan = ([("sigkill", "")] * (kills - in_save) + [("sigkill-in-save", "")] * in_save
            + [("sigterm", "")] * (rest - kills) + [("damage", kind) for kind in drawn])
    return [plan[i] for i in rng.permutation(len(plan))]


def reach(steps: int, current: int, cycles_left: int) -> int:
    """How many steps past its start a cycle's run may get before its fault: enough to
    cross two checkpoints, and enough for the remaining cycles to walk the whole run, but
    short of its end."""
    left = steps - current
    wanted = max(2 * CHECKPOINT_EVERY, math.ceil(2 * max(left, 0) / cycles_left))
    return max(1, min(wanted, left - 1))


def draw_moment(rng: np.random.Generator, timing: dict[str, float],
                steps_ahead: int) -> tuple[str, float]:
    """When a random-time signal comes: ("start-up", seconds after the start) or
    ("training", seconds after the first step), uniform over the phase."""
    if rng.random() < START_UP_SHARE:
        return "start-up", float(rng.uniform(0, timing["startup_s"]))
    return "training", float(rng.uniform(0, steps_ahead * timing["step_s"]))


# ---------------------------------------------------------------------- the cycles


def outcome(run: Run, status: int, hung: bool, family: str,
            workdir: pathlib.Path) -> dict[str, Any]:
    """What a finished run did: exit status and whether it was expected, the step it
    resumed from, the step a SIGTERM saved (and whether that checkpoint is there), the
    damaged checkpoints it moved aside, tracebacks."""
    text = run.text()
    resumed = RESUMED.search(text)
    stopped = STOPPED.search(text)
    record = {"status": status, "expected_status": status in EXPECTED[family] and not hung,
              "hung": hung, "seconds": round(run.seconds(), 2),
              "resumed_from": int(resumed.group(1)) if resumed else None,
              "moved_aside": text.count("moved it aside to"),
              "tracebacks": text.count("Traceback"),
              "newest_step": newest_step(workdir)}
    if stopped:
        step = int(stopped.group(2))
        record["saved_on_stop"] = step
        record["stop_checkpoint_there"] = (checkpoint_folder(workdir) / str(step)).is_dir()
    elif "while compiling" in text:
        record["saved_on_stop"] = "nothing (while compiling)"
    return record


def signal_at_random(run: Run, rng: np.random.Generator, timing: dict[str, float],
                     steps_ahead: int, signum: int) -> dict[str, Any]:
    """Send ``signum`` at a random moment of the start-up or of the training."""
    phase, delay = draw_moment(rng, timing, steps_ahead)
    planned = {"phase": phase, "delay_s": round(delay, 3)}
    if phase == "training" and run.wait_for(run.training, HANG_S) != "met":
        return {**planned, "landed": "ended first"}
    if run.wait_for(lambda: False, delay) == "ended":
        return {**planned, "landed": "ended first"}
    landed = "training" if run.training() else "start-up"
    return {**planned, "landed": landed, "sent_at_s": round(run.send(signum), 3)}


def kill_in_save(run: Run, rng: np.random.Generator, workdir: pathlib.Path,
                 steps_ahead: int) -> dict[str, Any]:
    """SIGKILL while orbax writes a checkpoint: let a random number of saves pass, then
    kill a random moment (up to SAVE_DELAY_S) after the next one's temporary folder
    appears; whether that folder was still there is recorded."""
    before = saves_under_way(workdir)  # left over by earlier kills: not saves of this run
    passing = int(rng.integers(0, max(1, steps_ahead // CHECKPOINT_EVERY)))
    delay = float(rng.uniform(0, SAVE_DELAY_S))
    seen: set[tuple[str, int, int]] = set()

    def saving() -> bool:
        seen.update(saves_under_way(workdir) - before)
        return len(seen) > passing

    planned = {"saves_passed": passing, "delay_s": round(delay, 3)}
    if run.wait_for(saving, HANG_S, poll=SAVE_POLL_S) != "met":
        return {**planned, "landed": "ended first"}
    time.sleep(delay)
    inside = bool(saves_under_way(workdir) - before)
    if run.process.poll() is not None:
        return {**planned, "landed": "ended first"}
    sent = run.send(signal.SIGKILL)
    return {**planned, "landed": "in a save" if inside else "after a save",
            "sent_at_s": round(sent, 3)}


def stop_after_a_checkpoint(run: Run, workdir: pathlib.Path) -> dict[str, Any]:
    """SIGTERM once the run has committed a new checkpoint (it has resumed and trained)."""
    before = step_folders(workdir)
    if run.wait_for(lambda: bool(step_folders(workdir) - before), HANG_S) != "met":
        return {"landed": "ended first"}
    return {"landed": "after a new checkpoint", "sent_at_s": round(run.send(signal.SIGTERM), 3)}


def run_cycle(number: int, family: str, kind: str, paths: dict[str, pathlib.Path],
              steps: int, steps_ahead: int, rng: np.random.Generator,
              timing: dict[str, float], damaged: set[int]) -> dict[str, Any]:
    """Start a run on the soak workdir and inject the cycle's fault; what happened."""
    workdir = paths["soak"]
    record = {"cycle": number, "family": family, "kind": kind,
              "start_step": newest_step(workdir), "reach": steps_ahead}
    run = Run(train_command(workdir, steps), soak_env(paths["cache"]),
              paths["logs"] / f"cycle_{number:03d}")
    if family == "sigkill":
        record.update(signal_at_random(run, rng, timing, steps_ahead, signal.SIGKILL))
    elif family == "sigkill-in-save":
        record.update(kill_in_save(run, rng, workdir, steps_ahead))
    elif family == "sigterm":
        record.update(signal_at_random(run, rng, timing, steps_ahead, signal.SIGTERM))
    else:
        record.update(stop_after_a_checkpoint(run, workdir))
    status, hung = run.finish()
    if record.get("phase") == "training" and run.trained_at is not None:
        timing["startup_s"] = run.trained_at  # the start-up as it is now (cache warm)
    record.update(outcome(run, status, hung, family, workdir))
    if family == "damage":
        record.update(damage_newest(workdir, kind, damaged))
    return record


def describe(record: dict[str, Any], cycles: int) -> str:
    """One line about a cycle, for the console."""
    what = record["family"] + (f" ({record['kind']})" if record["kind"] else "")
    landed = record.get("landed", "")
    at = f" at {record['sent_at_s']:.2f} s" if "sent_at_s" in record else ""
    stop = f", saved {record['saved_on_stop']}" if "saved_on_stop" in record else ""
    harm = (f", damaged {record['damaged_step']}" if record.get("damaged_step") is not None
            else f", {record['damage_note']}" if "damage_note" in record else "")
    if record["status"] == -signal.SIGTERM:
        stop = ", killed before fcnjax's handlers were installed"
    flag = "" if record["expected_status"] and not record["tracebacks"] else "  <-- UNEXPECTED"
    return (f"cycle {record['cycle']:3d}/{cycles} {what}: {landed}{at}; exit "
            f"{record['status']}, checkpoint {record['start_step']} -> "
            f"{record['newest_step']}{stop}{harm}{flag}")


def reference_run(paths: dict[str, pathlib.Path], steps: int) -> tuple[dict, dict]:
    """The uninterrupted run (it fills the compilation cache); its outcome and timing:
    seconds to its first step and per step after it."""
    run = Run(train_command(paths["reference"], steps), soak_env(paths["cache"]),
              paths["logs"] / "reference")

    def following() -> bool:  # never met: read the bar until the run ends
        run.read_bar()
        return False

    run.wait_for(following, 2 * HANG_S)
    status, hung = run.finish()
    record = {"family": "reference", **outcome(run, status, hung, "reference",
                                               paths["reference"])}
    if run.trained_at is None or run.last_step is None or run.last_step[1] <= run.first_step + 1:
        sys.exit(f"the reference run showed no progress: see {paths['logs'] / 'reference.err'}")
    (last_at, last), first = run.last_step, run.first_step + 1  # trained_at: first step done
    timing = {"startup_s": run.trained_at,
              "step_s": (last_at - run.trained_at) / max(last - first, 1)}
    return record, timing


def finish(paths: dict[str, pathlib.Path], steps: int) -> list[dict[str, Any]]:
    """Rerun the soak workdir, unharmed, until a run finishes (exit 0)."""
    records = []
    for attempt in range(1, FINAL_ATTEMPTS + 1):
        run = Run(train_command(paths["soak"], steps), soak_env(paths["cache"]),
                  paths["logs"] / f"final_{attempt}")
        status, hung = run.finish(timeout=2 * HANG_S)
        records.append({"family": "final", "attempt": attempt,
                        **outcome(run, status, hung, "final", paths["soak"])})
        if status == 0:
            break
    return records


# ------------------------------------------------------------------- the comparison


def params_difference(a: Any, b: Any) -> tuple[bool, float | None]:
    """(bitwise identical, max |a - b|) of two param trees; (False, None) when their
    structures or shapes differ."""
    import jax

    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    if tree_a != tree_b or any(np.shape(x) != np.shape(y) for x, y in zip(leaves_a, leaves_b)):
        return False, None
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b)]
    identical = all(np.array_equal(x, y) for x, y in pairs)
    worst = max((float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
                 for x, y in pairs if x.size), default=0.0)
    return identical, worst


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A metrics record without its wall-clock fields."""
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}


def compare_history(reference: list[dict], soak: list[dict]) -> dict[str, Any]:
    """How the soak's metrics.jsonl differs from the reference's: keys (step, mode, split)
    lost, extra or duplicated, and the records whose values differ (with the fields)."""
    from fcnjax.run.reporting import record_key

    expected = {record_key(r): r for r in reference}
    counts = collections.Counter(record_key(r) for r in soak)
    last = {record_key(r): r for r in soak}
    differing = []
    for key, record in expected.items():
        if key in last and comparable(record) != comparable(last[key]):
            fields = sorted(f for f in set(comparable(record)) | set(comparable(last[key]))
                            if record.get(f) != last[key].get(f))
            differing.append({"key": list(key), "fields": fields})
    return {"lost": [list(k) for k in expected if k not in counts],
            "extra": [list(k) for k in counts if k not in expected],
            "duplicated": sum(n - 1 for n in counts.values()),
            "differing": differing}


def last_eval(records: list[dict]) -> dict[str, Any] | None:
    """The last eval record of a history."""
    evals = [r for r in records if r.get("mode") == "eval"]
    return evals[-1] if evals else None


def compare(paths: dict[str, pathlib.Path]) -> dict[str, Any]:
    """Final params, last eval and history of the soak against the reference."""
    from fcnjax.run import checkpoint, reporting

    try:
        identical, worst = params_difference(checkpoint.restore_params(str(paths["reference"])),
                                             checkpoint.restore_params(str(paths["soak"])))
        problem = None
    except Exception as e:  # noqa: BLE001  (a missing or damaged final checkpoint: report it)
        identical, worst, problem = False, None, f"{type(e).__name__}: {e}"
    reference = reporting.read_metrics(str(paths["reference"]))
    soak = reporting.read_metrics(str(paths["soak"]))
    return {"params_identical": identical, "params_max_abs_diff": worst,
            "params_problem": problem,
            "final_eval_equal": last_eval(reference) is not None
            and last_eval(reference) == last_eval(soak),
            "reference_records": len(reference), "soak_records": len(soak),
            **compare_history(reference, soak)}


# ---------------------------------------------------------------------- the figures


def tally(cycles: list[dict], runs: list[dict], found: dict[str, Any],
          workdir: pathlib.Path, seconds: float) -> dict[str, Any]:
    """The soak's figures (the table)."""
    families = collections.Counter(c["family"] for c in cycles)
    kinds = collections.Counter(c["kind"] for c in cycles if c["family"] == "damage")
    stops = [r for r in runs if isinstance(r.get("saved_on_stop"), int)]
    return {
        "cycles": len(cycles),
        "SIGKILL at a random time": families["sigkill"],
        "SIGKILL in a checkpoint save": families["sigkill-in-save"],
        "  of which landed with the save's tmp folder there":
            sum(c.get("landed") == "in a save" for c in cycles),
        "SIGTERM at a random time": families["sigterm"],
        **{f"damage: {kind}": kinds[kind] for kind in DAMAGES},
        "damages applied": sum(c.get("damaged_step") is not None for c in cycles),
        "faults that found the run ended": sum(c.get("landed") == "ended first"
                                               for c in cycles),
        "runs": len(runs),
        "resumes": sum(r["resumed_from"] is not None for r in runs),
        "SIGTERM stops with their checkpoint": sum(r["stop_checkpoint_there"] for r in stops),
        "SIGTERM stops without their checkpoint":
            sum(not r["stop_checkpoint_there"] for r in stops),
        "SIGTERMs before fcnjax's handlers (killed, -15)":
            sum(r["status"] == -signal.SIGTERM for r in runs),
        "identical finishes": int(found["params_identical"]),
        "params max |diff|": found["params_max_abs_diff"],
        "final eval metrics equal": int(found["final_eval_equal"]),
        "checkpoints moved aside": len(moved_aside(workdir)),
        "records lost": len(found["lost"]),
        "duplicated records": found["duplicated"],
        "extra records": len(found["extra"]),
        "records with other values": len(found["differing"]),
        "tracebacks": sum(r["tracebacks"] for r in runs),
        "unexpected exit statuses": sum(not r["expected_status"] for r in runs),
        "hangs": sum(r["hung"] for r in runs),
        "wall time (s)": round(seconds, 1),
    }


def format_table(table: dict[str, Any]) -> str:
    """The table as aligned text lines."""
    width = max(map(len, table))
    return "\n".join(f"{name:<{width}}  {value}" for name, value in table.items())


def failures(table: dict[str, Any], code: tuple[str, str]) -> list[str]:
    """What makes the soak fail: other params at the end, records lost or duplicated, or
    code (the fingerprints at the start and the end) that changed during the soak."""
    checks = [(code[0] != code[1], "fcnjax's code changed during the soak: run it again"),
              (table["identical finishes"] != 1, "the final parameters differ"),
              (table["records lost"] > 0, f"{table['records lost']} records lost"),
              (table["duplicated records"] > 0,
               f"{table['duplicated records']} records duplicated")]
    return [message for failed, message in checks if failed]


def machine() -> str:
    """This machine in a few words: CPU cores and JAX's device."""
    import jax

    device = jax.devices()[0]
    return (f"{os.cpu_count()}-core {platform.machine()} CPU, jax {jax.__version__} on "
            f"{device.platform} ({device.device_kind})")


# ------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=30, help="faults to inject")
    parser.add_argument("--out", default="/tmp/fcnjax_fault_soak",
                        help="folder for reference/, soak/, logs/, jax_cache/, soak.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault schedule")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps of the run (default: {STEPS} or 2 per cycle if more)")
    args = parser.parse_args(argv)
    if args.steps is None:  # room for every cycle's fault to land somewhere new
        args.steps = max(STEPS, 2 * args.cycles)
    if args.cycles < 1 or args.steps < 2 * CHECKPOINT_EVERY:
        parser.error(f"--cycles must be >= 1 and --steps >= {2 * CHECKPOINT_EVERY}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when the run ended as the reference did, else 1."""
    args = parse(argv)
    out = pathlib.Path(args.out).resolve()
    paths = {"reference": out / "reference", "soak": out / "soak", "logs": out / "logs",
             "cache": out / "jax_cache"}
    for name in ("reference", "soak"):
        if paths[name].exists():
            sys.exit(f"{paths[name]} exists: give another --out, or remove it")
    paths["logs"].mkdir(parents=True, exist_ok=True)
    began, code_at_start = time.monotonic(), code_fingerprint()
    rng = np.random.default_rng(args.seed)
    plan = schedule(args.cycles, rng)

    print(f"reference: {args.steps} steps in {paths['reference']}", flush=True)
    reference, timing = reference_run(paths, args.steps)
    print(f"reference: exit {reference['status']} in {reference['seconds']:.1f} s "
          f"(first step at {timing['startup_s']:.1f} s, then {timing['step_s']:.2f} s/step)",
          flush=True)
    if reference["status"] != 0:
        sys.exit(f"the reference run failed: see {paths['logs'] / 'reference.err'}")

    cycles, damaged = [], set()
    for number, (family, kind) in enumerate(plan, 1):
        steps_ahead = reach(args.steps, newest_step(paths["soak"]), args.cycles - number + 1)
        cycles.append(run_cycle(number, family, kind, paths, args.steps, steps_ahead, rng,
                                timing, damaged))
        print(describe(cycles[-1], args.cycles), flush=True)
    finals = finish(paths, args.steps)
    print(f"final: {len(finals)} run(s), exit {finals[-1]['status']}", flush=True)

    found = compare(paths)
    table = tally(cycles, [reference, *cycles, *finals], found, paths["soak"],
                  time.monotonic() - began)
    code = (code_at_start, code_fingerprint())
    failed = failures(table, code)
    report = {"argv": sys.argv[1:] if argv is None else list(argv), "commit": git_commit(),
              "code_fingerprints": code,
              "train_command": train_command(paths["soak"], args.steps),
              "seed": args.seed, "steps": args.steps, "machine": machine(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "timing": timing,
              "jax_cache_files": len(os.listdir(paths["cache"])) if paths["cache"].exists()
              else 0, "table": table, "failures": failed, "comparison": found,
              "runs": [reference, *cycles, *finals]}
    (out / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    print(format_table(table))
    if found["differing"]:
        first = found["differing"][0]
        print(f"history: {len(found['differing'])} records differ from the reference, e.g. "
              f"{tuple(first['key'])} in {', '.join(first['fields'])} (soak.json lists them)")
    for message in failed:
        print(f"FAILED: {message}")
    print(f"figures and every run in {out / 'soak.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

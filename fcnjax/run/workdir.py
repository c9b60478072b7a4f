"""One run per workdir: a lock held for the run's life, and the run's config kept beside it.

:class:`RunLock` creates ``<workdir>/run.lock`` (JSON: pid, host, start time, command line,
a heartbeat refreshed by a daemon thread) and refuses a second run on the same workdir with
:class:`WorkdirInUse`, a one-line message naming the holder. A lock left by a run that died
is taken over: on the same machine when its process is gone, from another machine (a shared
file system) when its heartbeat is older than ``STALE_PERIODS`` heartbeat periods.

:func:`save_config` writes the run's config to ``<workdir>/config.json``;
:func:`check_resume` refuses (:class:`ConfigChanged`) to resume a run whose saved config
differs from the new one in more than ``RESUMABLE_FIELDS``, unless changes are allowed.

Lock file ``run.lock``, one JSON object::

    {"pid": 1234, "host": "h", "boot_id": "...", "pidns": "pid:[4026531836]",
     "started": 1796220065.2, "heartbeat": 1796220095.3, "heartbeat_s": 30.0,
     "command": "python -m fcnjax.train --config ...", "token": "<uuid4 hex>"}

``started`` and ``heartbeat`` are seconds since the epoch; ``boot_id`` and ``pidns`` (Linux;
"" elsewhere) tell whether a pid can be checked from here: only on the same host, boot and
pid namespace. ``token`` tells this lock from another written by the same pid.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from fcnjax.run.errors import ConfigError

LOCK_NAME = "run.lock"
CONFIG_NAME = "config.json"
HEARTBEAT_S = 30.0          # default seconds between heartbeats
STALE_PERIODS = 4           # a heartbeat older than this many periods: the holder is gone
ATTEMPTS = 10               # create / take over rounds before giving up on a contended lock
CLAIM_STALE_S = 30.0        # a take-over claim this old was left by a taker that died
ALLOW_FLAG = "--config.train.allow_config_change=True"
MAX_LISTED = 6              # differing fields named in ConfigChanged's message
# Fields a resumed run may change: how long it runs, how often it logs, evaluates and saves,
# how it reads data; none of them changes what is learnt.
RESUMABLE_FIELDS = frozenset({
    "train.steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
    "train.max_to_keep", "train.keep_best", "train.allow_config_change",
    "eval.num_draw", "eval.batch_size", "eval.mode", "eval.window", "eval.stride",
    "eval.blend", "eval.weights",
    "input.workers", "input.read_threads", "input.check_data", "compile_cache",
    "input.augment_on",
})

_HELD: set[str] = set()     # tokens of the locks this process holds (or is creating)


class WorkdirInUse(ConfigError):
    """Another run holds the workdir's lock; the message names it and the fix."""


class ConfigChanged(ConfigError):
    """The workdir's earlier run had another config; the message lists the differing fields
    and the flag that allows resuming with them."""


# ---------------------------------------------------------------------------- the lock


def _read_text(path: str) -> str:
    """The stripped text of ``path``; "" when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    """Where this process runs: host name, boot id and pid namespace (the last two on Linux,
    "" elsewhere). A pid names a process only among processes of the same three."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return {"host": socket.gethostname(),
            "boot_id": _read_text("/proc/sys/kernel/random/boot_id"), "pidns": pidns}


def command_line() -> str:
    """This process's command line, shell-quoted (``python -m fcnjax.train ...``)."""
    return shlex.join(getattr(sys, "orig_argv", None) or sys.argv)


def lock_body(token: str, heartbeat_s: float, here: Mapping[str, str],
              now: float | None = None) -> dict[str, Any]:
    """The JSON object of a lock held by this process (see the module docstring)."""
    now = time.time() if now is None else now
    return {"pid": os.getpid(), **here, "started": now, "heartbeat": now,
            "heartbeat_s": float(heartbeat_s), "command": command_line(), "token": token}


def encode(body: Mapping[str, Any]) -> bytes:
    """``body`` as the bytes of a lock file."""
    return (json.dumps(body, sort_keys=True) + "\n").encode("utf-8")


def _number(value: Any, default: float = 0.0) -> float:
    """``value`` as a float; ``default`` when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _read_bytes(path: str) -> tuple[bytes, float]:
    """The bytes and modification time of ``path`` (FileNotFoundError when absent)."""
    with open(path, "rb") as f:
        return f.read(), os.fstat(f.fileno()).st_mtime


def read_lock(path: str) -> tuple[bytes, dict[str, Any]]:
    """The raw bytes and the holder of the lock file ``path`` (FileNotFoundError when there
    is none). An unreadable file's holder is ``{"unreadable": True, "heartbeat": mtime}``."""
    raw, mtime = _read_bytes(path)
    try:
        holder = json.loads(raw.decode("utf-8"))
    except ValueError:
        holder = None
    if not isinstance(holder, dict):
        holder = {"unreadable": True, "heartbeat": mtime}
    return raw, holder


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, someone else's
        return True
    return True


def same_machine(holder: Mapping[str, Any], here: Mapping[str, str]) -> bool:
    """Whether ``holder``'s pid can be checked from here: same host, boot and pid namespace."""
    return all(holder.get(key, "") == here[key] for key in ("host", "boot_id", "pidns"))


def heartbeat_age(holder: Mapping[str, Any], now: float) -> float:
    """Seconds since ``holder``'s last heartbeat."""
    return now - _number(holder.get("heartbeat"))


def stale_reason(holder: Mapping[str, Any], here: Mapping[str, str], now: float,
                 own_pid: int, held: set[str] | frozenset[str] = frozenset(),
                 alive: Callable[[int], bool] = pid_alive) -> str | None:
    """Why the lock of ``holder`` is stale ("its process 1234 is gone"), or None while its
    run may still be alive. On this machine its pid decides (``own_pid`` with a token not in
    ``held``: left by an earlier process that had this pid, as after a container restart);
    elsewhere, or when the pid is unusable, a heartbeat older than ``STALE_PERIODS`` of its
    periods."""
    pid = holder.get("pid")
    if not holder.get("unreadable") and same_machine(holder, here) and isinstance(pid, int):
        if pid == own_pid:
            return None if holder.get("token") in held else (
                "it was left by an earlier process with this pid")
        return None if alive(pid) else f"its process {pid} is gone"
    period = _number(holder.get("heartbeat_s"), HEARTBEAT_S) or HEARTBEAT_S
    age = heartbeat_age(holder, now)
    if age > STALE_PERIODS * period:
        return f"its last heartbeat was {age:.0f} s ago"
    return None


def shorten(text: str, limit: int = 120) -> str:
    """``text`` on one line, cut to ``limit`` characters with "..."."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe_holder(holder: Mapping[str, Any], here: Mapping[str, str], now: float) -> str:
    """``holder`` in words: "pid 1234 on host h, started 2026-12-02 14:01:05, command ..."."""
    if holder.get("unreadable"):
        return (f"{LOCK_NAME} unreadable, last written {heartbeat_age(holder, now):.0f} s "
                "ago")
    started = time.strftime("%Y-%m-%d %H:%M:%S",
                            time.localtime(_number(holder.get("started"))))
    parts = [f"pid {holder.get('pid')} on host {holder.get('host')}", f"started {started}"]
    if not same_machine(holder, here):
        parts.append(f"last heartbeat {max(heartbeat_age(holder, now), 0):.0f} s ago")
    parts.append(f"command {shorten(holder.get('command', '?'))}")
    return ", ".join(parts)


def in_use_message(workdir: str, holder: Mapping[str, Any], here: Mapping[str, str],
                   now: float) -> str:
    """WorkdirInUse's message: the workdir, its holder, the fix."""
    return (f"workdir {workdir} is in use by another run ({describe_holder(holder, here, now)})"
            ": wait for it to finish, or pass another --workdir")


def write_temp(path: str, data: bytes, suffix: str) -> str:
    """A complete, synced file of ``data`` beside ``path`` (a unique ``suffix`` name): the
    first half of an atomic write. Returns its path; the caller renames or removes it."""
    tmp = f"{path}.{uuid.uuid4().hex}{suffix}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` by ``data`` at once (a temp file beside it, then os.replace): a
    reader sees the old or the new contents, never half of them."""
    tmp = write_temp(path, data, ".tmp")
    try:
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def create_lock(path: str, data: bytes) -> None:
    """Create ``path`` holding ``data``, or raise FileExistsError: atomically, as a hard link
    to a complete temp file (no reader sees it half written), or with O_CREAT | O_EXCL where
    the file system has no hard links."""
    tmp = write_temp(path, data, ".new")
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def take_away(path: str, seen: bytes, token: str) -> bool:
    """Remove the file ``path`` (a stale take-over claim) if it still holds ``seen``: True
    when removed. The file is renamed aside (one rename wins) and read back; a file that is
    not the one judged stale is put back."""
    aside = f"{path}.{token}.stale"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    try:
        with open(aside, "rb") as f:
            moved = f.read()
        if moved == seen:
            return True
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)  # put it back, unless yet another run has locked since
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)


def take_over(path: str, seen: bytes, token: str) -> bool:
    """Remove the stale lock ``path`` if it still holds ``seen``: True when removed, False
    when another run is taking it over or took it over already (then try again).

    One taker at a time: the taker holds ``<path>.takeover``, created like a lock, while it
    re-reads and removes the stale file, so two runs taking over at once cannot both win,
    nor remove a lock a third has just made. A claim left by a taker that died is removed
    after ``CLAIM_STALE_S`` seconds."""
    claim = f"{path}.takeover"
    mine = token.encode("utf-8")
    try:
        create_lock(claim, mine)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            raw, mtime = _read_bytes(claim)
            if time.time() - mtime > CLAIM_STALE_S:
                take_away(claim, raw, token)
        return False
    try:
        current, _ = _read_bytes(path)
        if current != seen:
            return False
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            if _read_bytes(claim)[0] == mine:
                os.unlink(claim)


def _to_stderr(line: str) -> None:
    """Print ``line`` to stderr (RunLock's default ``note``)."""
    print(line, file=sys.stderr, flush=True)


class RunLock:
    """``<workdir>/run.lock``, held from ``acquire`` (or ``with``) to ``release``.

    ``RunLock(workdir, heartbeat_s=30, enabled=True, note=print_to_stderr)``: a second run
    on the workdir is refused (WorkdirInUse, naming the holder); a stale lock is taken over
    with a one-line ``note`` (also kept in ``took_over``). A daemon thread refreshes the
    heartbeat every ``heartbeat_s`` seconds; ``lost`` says when the lock was taken from this
    run meanwhile, and ``check()`` raises then. Released (the file removed) on leaving the
    ``with`` block, on an exception too. ``enabled=False`` (every process of a multi-process
    run but process 0: pass ``jax.process_index() == 0``) does nothing.
    """

    def __init__(self, workdir: str | os.PathLike, heartbeat_s: float = HEARTBEAT_S,
                 enabled: bool = True, note: Callable[[str], Any] | None = None):
        if not _number(heartbeat_s) > 0:
            raise ConfigError(f"RunLock heartbeat_s = {heartbeat_s!r}: give a positive "
                              "number of seconds")
        self.workdir = os.fspath(workdir)
        self.path = os.path.join(self.workdir, LOCK_NAME)
        self.heartbeat_s = float(heartbeat_s)
        self.enabled = bool(enabled)
        self.note = note or _to_stderr
        self.token = uuid.uuid4().hex
        self.held = False
        self.took_over: str | None = None
        self.lost: str | None = None
        self._body: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> RunLock:
        """Take the lock (WorkdirInUse when another live run holds it); returns self."""
        if not self.enabled or self.held:
            return self
        os.makedirs(self.workdir, exist_ok=True)
        here = machine()
        self._body = lock_body(self.token, self.heartbeat_s, here)
        taken = None
        _HELD.add(self.token)  # before the file exists: a thread here must not judge it stale
        try:
            for _ in range(ATTEMPTS):
                try:
                    create_lock(self.path, encode(self._body))
                except FileExistsError:
                    pass
                else:
                    self._started(taken)
                    return self
                try:
                    raw, holder = read_lock(self.path)
                except FileNotFoundError:
                    continue
                now = time.time()
                reason = stale_reason(holder, here, now, os.getpid(), _HELD)
                if reason is None:
                    raise WorkdirInUse(in_use_message(self.workdir, holder, here, now))
                if take_over(self.path, raw, self.token):
                    taken = (f"workdir {self.workdir}: taking over the stale lock of another "
                             f"run ({describe_holder(holder, here, now)}): {reason}")
                else:
                    time.sleep(random.uniform(0.01, 0.05))  # another run is taking it over
        except BaseException:
            _HELD.discard(self.token)
            raise
        _HELD.discard(self.token)
        raise WorkdirInUse(f"workdir {self.workdir}: could not take {LOCK_NAME}, other runs "
                           "are starting on it at the same time: wait for them to finish, "
                           "or pass another --workdir")

    def _started(self, taken: str | None) -> None:
        """Mark the lock held, say which stale lock it replaced, start the heartbeat."""
        self.held, self.lost, self.took_over = True, None, taken
        if taken:
            self.note(taken)
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat_until_stopped, daemon=True,
                                        name=f"fcnjax-run-lock-{self.token[:8]}")
        self._thread.start()

    def _beat_until_stopped(self) -> None:
        """The heartbeat thread: ``beat`` every ``heartbeat_s`` until released or lost."""
        while not self._stop.wait(self.heartbeat_s):
            try:
                if not self.beat():
                    return
            except OSError:  # a full disk or a file system hiccup: try again next period
                continue

    def beat(self) -> bool:
        """Refresh the heartbeat now; False (``lost`` set, a note) when the lock file is no
        longer this run's."""
        if not self.held:
            return False
        try:
            _, holder = read_lock(self.path)
        except FileNotFoundError:
            holder = {}
        if holder.get("token") != self.token:
            self.lost = f"{self.path} was removed or taken over by another run"
            self.note(f"warning: {self.lost}; two runs may now write to workdir "
                      f"{self.workdir}")
            return False
        self._body["heartbeat"] = time.time()
        write_atomic(self.path, encode(self._body))
        return True

    def check(self) -> None:
        """Raise WorkdirInUse when the lock was taken from this run while it ran."""
        if self.lost:
            raise WorkdirInUse(f"workdir {self.workdir}: {self.lost} while this run held it: "
                               "stop the other run, or pass another --workdir")

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still this run's."""
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.held = False
        _HELD.discard(self.token)
        try:
            _, holder = read_lock(self.path)
        except FileNotFoundError:
            return
        if holder.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


# -------------------------------------------------------------------------- the config


def plain(value: Any) -> Any:
    """``value`` as plain data: ConfigDicts (``to_dict()``) and mappings as dicts with str
    keys, tuples as lists, the rest as is."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def config_dict(config: Any) -> dict[str, Any]:
    """``config`` (an ml_collections ConfigDict or a mapping) as it reads back from JSON:
    tuples as lists, values JSON cannot hold as their str()."""
    data = plain(config)
    if not isinstance(data, dict):
        raise TypeError(f"a config is a ConfigDict or a mapping, not {type(config).__name__}")
    return json.loads(json.dumps(data, default=str))


def save_config(workdir: str | os.PathLike, config: Any) -> str:
    """Write ``config`` to ``<workdir>/config.json`` atomically (sorted keys, indented);
    returns the file's path."""
    path = os.path.join(os.fspath(workdir), CONFIG_NAME)
    text = json.dumps(config_dict(config), indent=2, sort_keys=True) + "\n"
    write_atomic(path, text.encode("utf-8"))
    return path


def load_config(workdir: str | os.PathLike) -> dict[str, Any] | None:
    """The config of ``<workdir>/config.json``; None when there is none. ConfigError when it
    is not a JSON object."""
    path = os.path.join(os.fspath(workdir), CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ConfigError(f"{path} is not JSON ({e}): fix it, or remove it to resume "
                          "without comparing configs") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds no config object: fix it, or remove it to resume "
                          "without comparing configs")
    return data


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: ``{"optim.learning_rate": 0.05, ...}``
    (an empty mapping stays a value)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def same(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same setting: lists element by element, a bool never
    equal to a number, NaN equal to NaN."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class Change(NamedTuple):
    """A config field that differs: its dotted name, old and new value (UNSET: absent)."""
    field: str
    old: Any
    new: Any


UNSET = "<unset>"


def config_changes(old: Any, new: Any) -> list[Change]:
    """The fields of two configs (ConfigDicts or mappings) that differ, by dotted name,
    sorted; tuples and lists compare equal."""
    before, after = flatten(config_dict(old)), flatten(config_dict(new))
    changes = []
    for field in sorted(before.keys() | after.keys()):
        a, b = before.get(field, UNSET), after.get(field, UNSET)
        if (field in before) != (field in after) or not same(a, b):
            changes.append(Change(field, a, b))
    return changes


def show(value: Any, limit: int = 40) -> str:
    """A config value in a message: repr, cut to ``limit`` characters."""
    return value if value is UNSET else shorten(repr(value), limit)


def describe_changes(changes: list[Change], limit: int = MAX_LISTED) -> str:
    """``changes`` on one line: "optim.learning_rate 0.05 -> 0.1, ..." (at most ``limit``,
    then "and N more")."""
    listed = ", ".join(f"{c.field} {show(c.old)} -> {show(c.new)}" for c in changes[:limit])
    if len(changes) > limit:
        listed += f" and {len(changes) - limit} more"
    return listed


def changed_message(workdir: str, changes: list[Change]) -> str:
    """ConfigChanged's message: the differing fields "old -> new", then the fix."""
    return (f"workdir {workdir} holds a run with another config "
            f"({os.path.join(workdir, CONFIG_NAME)}): {describe_changes(changes)}: resume it "
            f"with its config, pass another --workdir for a new run, or {ALLOW_FLAG} to "
            "resume with the changes")


def check_resume(workdir: str | os.PathLike, config: Any,
                 allow_changes: bool = False) -> list[Change]:
    """Compare ``config`` with the earlier run's ``<workdir>/config.json`` (none: nothing to
    compare, []). Raises ConfigChanged listing the differing fields outside
    ``RESUMABLE_FIELDS`` unless ``allow_changes``; returns every difference.

    A field only one side has is no conflict: the config is locked, so a user cannot add
    one; a field comes or goes with another fcnjax version (its default then), and a run
    started before an upgrade must still resume.
    """
    old = load_config(workdir)
    if old is None:
        return []
    changes = config_changes(old, config)
    refused = [c for c in changes if c.field not in RESUMABLE_FIELDS
               and UNSET not in (c.old, c.new)]
    if refused and not allow_changes:
        raise ConfigChanged(changed_message(os.fspath(workdir), refused))
    return changes

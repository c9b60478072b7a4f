"""The user's mistakes, as exceptions the command lines print as one line.

``ConfigError`` (a config value that cannot work) and ``DataError`` (data that cannot train or
be scored as configured) are ValueErrors whose message names the problem and the fix.
:func:`one_line_errors` turns them, and the other exceptions of :func:`user_errors`, into
``<prog>: error: <message>`` and exit status 1 with no traceback; programming errors keep
their traceback. ``--debug`` on a command line, or ``FCNJAX_DEBUG=1``, shows the traceback
of user errors too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from typing import Any, Callable, Iterator

DEBUG_ENV = "FCNJAX_DEBUG"


class UserError(Exception):
    """Base of the user's mistakes that fcnjax raises (a config, data, weight file, workdir
    or checkpoint that cannot be used; a NaN loss): printed as one line by the CLIs. Defined
    here, with nothing of fcnjax imported, so any module can raise one."""


class UserStop(BaseException):
    """Base of a stop the user asked for (SIGINT, SIGTERM): a BaseException, as
    KeyboardInterrupt is, so ``except Exception`` does not swallow it."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message names the field and the fix."""


class DataError(UserError, ValueError):
    """Data that cannot be trained on or scored as the config says; the message says why."""


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
"""OSErrors of the user's disk (full, over quota, read-only): user errors too."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that are the user's mistake (missing files, bad config or data,
    unusable checkpoints, a NaN loss, a stop by SIGINT / SIGTERM), not fcnjax's: every
    :class:`UserError` and :class:`UserStop`, and the OS's missing or forbidden files."""
    return (UserError, UserStop, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError)


def debugging(argv: list[str] | None = None) -> bool:
    """Whether tracebacks of user errors are wanted: ``--debug`` in ``argv`` (removed from
    it) or ``FCNJAX_DEBUG`` set to anything but "", "0"."""
    argv = sys.argv if argv is None else argv
    wanted = "--debug" in argv
    while "--debug" in argv:
        argv.remove("--debug")
    return wanted or os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextlib.contextmanager
def one_line_errors(prog: str, debug: bool = False) -> Iterator[None]:
    """Exit with ``<prog>: error: <message>`` (status 1) on a user error; re-raise with
    ``debug``. Other exceptions pass through with their traceback."""
    try:
        yield
    except BaseException as error:
        disk = isinstance(error, OSError) and error.errno in DISK_ERRNOS
        if debug or not (disk or isinstance(error, user_errors())):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, OSError) and error.filename and error.filename not in message:
            message = f"{message}: {error.filename}"
        if disk:
            message += ("; free space (or give another folder) and rerun: a training run "
                        "resumes from its newest checkpoint")
        status = getattr(error, "exit_status", None)  # a signal's stop: 130 / 143
        if status is not None:
            print(f"{prog}: {message}", file=sys.stderr)
            raise SystemExit(status) from None
        raise SystemExit(f"{prog}: error: {message}") from None


def deprecated(old: str, new: str, prog: str = "fcnjax") -> None:
    """Print the one deprecation line of an old spelling still accepted for one release:
    ``<prog>: <old> is deprecated and will be removed in the next release; <new>``."""
    print(f"{prog}: {old} is deprecated and will be removed in the next release; {new}",
          file=sys.stderr)


def renamed_flags(argv: list[str], renames: dict[str, str], prog: str) -> list[str]:
    """``argv`` with each old flag spelling of ``renames`` (old -> new) replaced by its new
    one, printing one line per old spelling used: ``<prog>: --old is deprecated, use --new``.
    Old spellings are accepted for one release."""
    out, given = [], {}
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if flag in renames:
            deprecated(flag, f"use {renames[flag]}", prog)
            arg, flag = renames[flag] + eq + value, renames[flag]
        out.append(arg)
        if flag in renames.values():
            given[flag] = given.get(flag, 0) + 1
    twice = [flag for flag, count in given.items() if count > 1]
    if twice:  # the new and the old spelling both given: neither may win silently
        old = ", ".join(k for k, v in renames.items() if v == twice[0])
        raise ConfigError(f"{twice[0]} is given twice (or with its old spelling {old}): "
                          "give it once")
    return out


def config_file_arg(argv: list[str]) -> str | None:
    """The file of ``--config FILE`` / ``--config=FILE`` in ``argv`` (without a ``:arg``)."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1].split(":")[0]
        if arg.startswith("--config="):
            return arg[len("--config="):].split(":")[0]
    return None


def override_message(error: BaseException) -> str:
    """ml_collections' message for a bad ``--config.x.y``, on one line: "the config has no
    field 'stpes': did you mean "steps"?" for a misspelt key."""
    text = " ".join(str(error).replace("\\n", " ").replace("\\'", "'").split())
    misspelt = re.search(r"'(\w+)'\s*Did you mean \"(\w+)\"", text)
    if misspelt:
        return (f"the config has no field {misspelt.group(1)!r}: did you mean "
                f"{misspelt.group(2)!r}?")
    return text.strip("'\"")


def run_app(prog: str, main: Callable[[list[str]], Any], argv: list[str] | None = None,
            config: Any = None, renamed: dict[str, str] | None = None) -> None:
    """``absl.app.run(main)`` with user errors as one line (see :func:`one_line_errors`):
    a missing config file, a misspelt ``--config.x.y`` or an unknown flag too, which absl
    and ml_collections report at parse time with tracebacks. ``config``: the FlagHolder of
    ``config_flags.DEFINE_config_file``, loaded while parsing so its errors are caught here.
    renamed: old flag spellings -> new ones, accepted with a deprecation line
    (:func:`renamed_flags`).
    """
    from absl import app, flags

    argv = list(sys.argv if argv is None else argv)
    debug = debugging(argv)
    if debug:
        os.environ[DEBUG_ENV] = "1"  # the CLI's main: the library's filters read it too
    if renamed:
        with one_line_errors(prog, debug):
            argv = argv[:1] + renamed_flags(argv[1:], renamed, prog)

    def parse(args: list[str]) -> list[str]:
        path = config_file_arg(args)
        if config is not None and path is not None and not os.path.isfile(path):
            raise ConfigError(f"config file {path} does not exist: give --config a config "
                              "file such as configs/sample.py")
        try:
            rest = flags.FLAGS(args)
            if config is not None:
                config.value  # noqa: B018  (loads the file: its errors surface here)
        except flags.Error as error:
            raise ConfigError(f"{error} (--helpfull lists the flags)") from error
        except (AttributeError, KeyError, TypeError, ValueError, OSError,
                SyntaxError) as error:
            raise ConfigError(f"bad config override: {override_message(error)}") from error
        return rest

    with one_line_errors(prog, debug):
        app.run(main, argv=argv, flags_parser=parse)

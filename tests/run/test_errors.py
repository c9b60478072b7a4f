"""User errors as one line: the base classes, a full disk, orbax's thread tracebacks."""

import ast
import errno
import logging
import pathlib

import pytest

from fcnjax.run import checkpoint, errors


def test_errors_imports_nothing_of_fcnjax():
    """Any module may raise a user error: errors.py must sit below all of them."""
    tree = ast.parse(pathlib.Path(errors.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m.startswith("fcnjax")]


def test_a_full_disk_is_one_line_that_says_what_to_do(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    with pytest.raises(SystemExit) as stop:
        with errors.one_line_errors("fcnjax.train"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
    assert stop.value.code.startswith("fcnjax.train: error: [Errno 28] No space left on "
                                      f"device: '{path}'; free space")
    with pytest.raises(OSError):  # other OS errors are fcnjax's: traceback
        with errors.one_line_errors("fcnjax.train"):
            raise OSError(errno.EIO, "Input/output error")


def test_orbax_writer_thread_tracebacks_are_dropped(monkeypatch):
    """A failed save is CheckpointSaveFailed, one line; orbax's ERROR records (one traceback
    per writer thread) are not printed beside it, unless FCNJAX_DEBUG asks for them."""
    monkeypatch.delenv(errors.DEBUG_ENV, raising=False)
    checkpoint.make_manager(str(pathlib.Path("/nonexistent/wt")), create=False).close()
    logger = logging.getLogger("absl")

    def record(path, level=logging.ERROR):
        return logger.makeRecord("absl", level, path, 1, "Failed to run 2 Handler Commit "
                                 "operations", (), (RuntimeError, RuntimeError("x"), None))

    orbax = "/site-packages/orbax/checkpoint/_src/checkpointers/async_checkpointer.py"
    assert not logger.filter(record(orbax))
    assert logger.filter(record(orbax, logging.WARNING))
    assert logger.filter(record(checkpoint.__file__))  # fcnjax's own records stay
    monkeypatch.setenv(errors.DEBUG_ENV, "1")
    assert logger.filter(record(orbax))


def test_an_old_and_a_new_spelling_together_are_refused(capsys):
    """evaluate --checkpoint A --workdir B: neither may win silently (--checkpoint did)."""
    renames = {"--workdir": "--checkpoint"}
    assert errors.renamed_flags(["--workdir=a", "--split", "val"], renames, "p") == [
        "--checkpoint=a", "--split", "val"]
    assert capsys.readouterr().err == ("p: --workdir is deprecated and will be removed in the "
                                       "next release; use --checkpoint\n")
    with pytest.raises(errors.ConfigError, match="--checkpoint is given twice .*--workdir"):
        errors.renamed_flags(["--checkpoint", "a", "--workdir", "b"], renames, "p")

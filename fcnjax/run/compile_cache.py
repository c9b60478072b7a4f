"""JAX's persistent compilation cache, on by default in fcnjax's command lines.

A rerun of the same program (same model, shapes, dtypes, devices and jax version) reads the
compiled executable from disk instead of compiling it again: the FCN-8s train step's
35-39 s compile on a GPU becomes a few seconds, and a resumed or repeated run starts at
once. ``config.compile_cache`` places it:

- ``"auto"`` (default): ``$JAX_COMPILATION_CACHE_DIR`` if set, else
  ``$XDG_CACHE_HOME/fcnjax/jax`` (``~/.cache/fcnjax/jax`` without XDG_CACHE_HOME);
- a path: that folder;
- ``""``: no cache.

Only programs that took at least ``jax_persistent_cache_min_compile_time_secs`` (JAX's
default 1 s; the environment variable ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` sets
it) to compile are written, so quick ones do not fill the folder. A folder that cannot be
made is reported in one line and the run goes on without a cache. Library callers
(notebooks, tests) get no cache unless they call :func:`enable`.
"""

from __future__ import annotations

import os

import jax

AUTO = "auto"


def resolve(setting: str) -> str:
    """The folder ``setting`` (``config.compile_cache``) names, "" for none (see module doc)."""
    if setting != AUTO:
        return os.path.expanduser(setting)
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fcnjax", "jax")


def enable(setting: str, note=print) -> str:
    """Turn on JAX's persistent cache in the folder ``setting`` names; returns it ("" when
    ``setting`` is "" or the folder cannot be made, which ``note`` reports in one line)."""
    folder = resolve(setting)
    if not folder:
        return ""
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as e:
        note(f"compilation cache off: cannot make {folder} ({e.strerror or e}); set "
             "--config.compile_cache to a writable folder, or '' to silence this")
        return ""
    jax.config.update("jax_compilation_cache_dir", folder)
    return folder

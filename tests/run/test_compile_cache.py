"""JAX's persistent compilation cache as fcnjax's command lines place it (issue 15)."""

import os
import subprocess
import sys

from fcnjax.run import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# compile one program with the cache in argv[1]; print how many cache hits JAX counted
PROGRAM = """
import sys, jax, jax.numpy as jnp
from fcnjax.run import compile_cache
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
print("folder", compile_cache.enable(sys.argv[1]))
jax.jit(lambda x: jnp.sin(x) @ x.T + 3.0)(jnp.ones((8, 8))).block_until_ready()
print("hits", len(hits))
"""


def test_auto_is_the_users_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.resolve("auto") == str(tmp_path / "xdg" / "fcnjax" / "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.resolve("auto") == str(tmp_path / "home" / ".cache" / "fcnjax" / "jax")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax_env"))
    assert compile_cache.resolve("auto") == str(tmp_path / "jax_env")
    assert compile_cache.resolve("~/x") == str(tmp_path / "home" / "x")
    assert compile_cache.resolve("") == ""


def test_off_and_an_unmakeable_folder_leave_the_cache_off(tmp_path):
    notes = []
    assert compile_cache.enable("", note=notes.append) == ""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert compile_cache.enable(str(blocker / "cache"), note=notes.append) == ""
    assert len(notes) == 1 and "compilation cache off" in notes[0] and "a_file" in notes[0]


def test_a_second_process_reads_the_compiled_program_from_disk(tmp_path):
    folder = tmp_path / "cache"

    def run():
        done = subprocess.run([sys.executable, "-c", PROGRAM, str(folder)], cwd=ROOT,
                              env={**os.environ, "JAX_PLATFORMS": "cpu"},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return dict(line.split(" ", 1) for line in done.stdout.splitlines())

    first = run()
    assert first == {"folder": str(folder), "hits": "0"}
    assert any(name.endswith("-cache") for name in os.listdir(folder))
    assert int(run()["hits"]) >= 1

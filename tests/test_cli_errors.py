"""A user's mistake on any command line is one line and a non-zero exit, no traceback."""

import os

import numpy as np
import pytest
from PIL import Image

from test_cli_datasets import cli

SAMPLE = ["--config", "configs/sample.py"]


def one_line(run, *words):
    """The single error line of a failed run (absl/tfds warnings aside), checked for words."""
    assert run.returncode == 1, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = [line for line in run.stderr.strip().splitlines()
             if not line.startswith(("WARNING:", "W1", "I1"))]
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--config", "configs/nope.py"], ["fcnjax.train: error:", "configs/nope.py", "does not"]),
    (SAMPLE + ["--config.train.stpes=3"], ["no field 'stpes'", "'steps'"]),
    (SAMPLE + ["--config.train.eval_every=0"], ["config.train.eval_every = 0", ">= 1"]),
    (SAMPLE + ["--config.train.batch_size=0"], ["config.train.batch_size = 0"]),
    (SAMPLE + ["--config.input.data_dir="], ["config.input.data_dir is empty"]),
    (SAMPLE + ["--config.input.source=tfds", "--config.input.tfds_name=camvid",
               "--config.input.tfds_data_dir=/nonexistent/tfds"],
     ["not prepared", "python -m fcnjax.data.prepare camvid"]),
])
def test_train_mistakes_are_one_line_and_leave_no_workdir(tmp_path, args, words):
    work = tmp_path / "work"
    one_line(cli("fcnjax.train", *args, "--workdir", work, timeout=180), *words)
    assert not work.exists()


def test_debug_shows_the_traceback(tmp_path):
    run = cli("fcnjax.train", *SAMPLE, "--config.train.eval_every=0", "--debug", "--workdir",
              tmp_path / "work", timeout=180)
    assert run.returncode != 0 and "Traceback" in run.stderr and "ConfigError" in run.stderr


def test_evaluate_and_predict_mistakes_are_one_line(tmp_path):
    one_line(cli("fcnjax.evaluate", *SAMPLE, "--checkpoint", tmp_path / "nowhere",
                 timeout=180), "fcnjax.evaluate: error:", "no checkpoint")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    one_line(cli("fcnjax.predict", *SAMPLE, "--checkpoint", tmp_path / "nowhere",
                 not_an_image, timeout=180), "fcnjax.predict: error:", "no checkpoint")


def test_prepare_and_inspect_mistakes_are_one_line(tmp_path):
    one_line(cli("fcnjax.data.prepare", "camvid", "--manual_dir", tmp_path / "none",
                 "--data_dir", tmp_path / "tfds", timeout=180),
             "fcnjax.data.prepare: error:", "none")
    one_line(cli("fcnjax.data.inspect", tmp_path / "none", timeout=180),
             "fcnjax.data.inspect: error:")

"""A user's mistake on any command line is one line and a non-zero exit, no traceback."""

import numpy as np
import pytest
from PIL import Image

from test_cli_datasets import cli, ok, write_isbi_layout

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
    # issue 22: each of these used to pass the checks, make the workdir, then fail or not
    (SAMPLE + ["--config.input.source=tfds", "--config.input.tfds_name=segmentation_folder/nope",
               "--config.input.tfds_data_dir={tmp}/tfds"],
     ["not prepared", "python -m fcnjax.data.prepare segmentation_folder/nope"]),
    (SAMPLE + ["--config.optim.learning_rate=-1"], ["config.optim.learning_rate = -1"]),
    (SAMPLE + ["--config.optim.schedule=linear"], ["unknown learning-rate schedule"]),
    (SAMPLE + ["--config.init.checkpoint={tmp}/a", "--config.init.caffe_vgg16={tmp}/b"],
     ["config.init names", "set at most one"]),
    (SAMPLE + ["--config.mesh.data=2"], ["config.mesh.data = 2"]),
    # issue 23: evaluation settings are checked with the rest, before the workdir
    (SAMPLE + ["--config.eval.mode=slide", "--config.eval.window=(16,16)",
               "--config.eval.stride=(8,20)"], ["config.eval.stride = (8, 20)", "exceeds"]),
    (SAMPLE + ["--config.init.pytorch_fcn={tmp}/junk.pth"],
     ["fcnjax.train: error:", "junk.pth", "not a plain tensor file"]),
])
def test_train_mistakes_are_one_line_and_leave_no_workdir(tmp_path, args, words):
    (tmp_path / "junk.pth").write_text("not a weight file")
    work = tmp_path / "work"
    args = [a.format(tmp=tmp_path) for a in args]
    one_line(cli("fcnjax.train", *args, "--workdir", work, timeout=180), *words)
    assert not work.exists()


def test_debug_shows_the_traceback(tmp_path):
    run = cli("fcnjax.train", *SAMPLE, "--config.train.eval_every=0", "--debug", "--workdir",
              tmp_path / "work", timeout=180)
    assert run.returncode != 0 and "Traceback" in run.stderr and "ConfigError" in run.stderr


def test_evaluate_and_predict_mistakes_are_one_line(tmp_path):
    one_line(cli("fcnjax.evaluate", *SAMPLE, "--checkpoint", tmp_path / "nowhere",
                 timeout=180), "fcnjax.evaluate: error:", "no checkpoint")
    one_line(cli("fcnjax.evaluate", *SAMPLE, "--checkpoint", tmp_path / "nowhere",
                 "--config.eval.blend=box", timeout=180),
             "fcnjax.evaluate: error:", "config.eval.blend = 'box'")  # before the checkpoint
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    one_line(cli("fcnjax.predict", *SAMPLE, "--checkpoint", tmp_path / "nowhere",
                 not_an_image, timeout=180), "fcnjax.predict: error:", "notes.png",
             "as an image")  # the images are checked first: a wrong file is found at once
    picture = tmp_path / "picture.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(picture)
    one_line(cli("fcnjax.predict", *SAMPLE, "--checkpoint", tmp_path / "nowhere", picture,
                 timeout=180), "fcnjax.predict: error:", "no checkpoint")
    assert not (tmp_path / "predict").exists()


def test_old_flag_spellings_work_for_one_release_with_one_line(tmp_path, capsys):
    """evaluate --workdir, zoo convert --out, prepare / inspect --data_dir and --out, and
    inspect's bare label values: each names its new spelling and still works."""
    run = cli("fcnjax.evaluate", *SAMPLE, "--workdir", tmp_path / "nowhere", timeout=180)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    said = [line for line in run.stderr.splitlines() if not line.startswith(("W1", "I1"))]
    assert said[0] == ("fcnjax.evaluate: --workdir is deprecated and will be removed in the "
                       "next release; use --checkpoint"), said
    assert "no checkpoint" in said[1] and len(said) == 2, said
    from fcnjax.data import inspect, prepare

    args = prepare.parse(["camvid", "--manual_dir", "m", "--data_dir", "d"])
    assert args.tfds_data_dir == "d"
    args = inspect.parse(["x", "--data_dir", "d", "--out", "s.png"])
    assert (args.tfds_data_dir, args.output) == ("d", "s.png")
    assert inspect.parse_label_values("0,255") == inspect.parse_label_values("(0,255)") == (0, 255)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "fcnjax.data.prepare: --data_dir is deprecated and will be removed in the next "
        "release; use --tfds_data_dir",
        "fcnjax.data.inspect: --data_dir is deprecated and will be removed in the next "
        "release; use --tfds_data_dir",
        "fcnjax.data.inspect: --out is deprecated and will be removed in the next release; "
        "use --output",
        "fcnjax.data.inspect: --label_values 0,255 is deprecated and will be removed in the "
        "next release; write --label_values '(0,255)', as --config.input.label_values is "
        "written"], err


def test_prepare_and_inspect_mistakes_are_one_line(tmp_path):
    one_line(cli("fcnjax.data.prepare", "camvid", "--manual_dir", tmp_path / "none",
                 "--tfds_data_dir", tmp_path / "tfds", timeout=180),
             "fcnjax.data.prepare: error:", "none")
    one_line(cli("fcnjax.data.inspect", tmp_path / "none", timeout=180),
             "fcnjax.data.inspect: error:")


def test_a_cut_shard_file_is_one_line_that_says_prepare_again(tmp_path):
    """An interrupted copy of a prepared dataset: train's start-up survey names the dataset,
    split and file (it was a 14-19 frame riegeli / PIL traceback) before any workdir."""
    tfds_dir = tmp_path / "tfds"
    ok(cli("fcnjax.data.prepare", "isbi2012", "--manual_dir",
           write_isbi_layout(tmp_path / "membrane", count=2), "--tfds_data_dir", tfds_dir))
    shard, = (tfds_dir / "isbi2012" / "1.0.0").glob("isbi2012-train.*")
    with open(shard, "r+b") as f:
        f.truncate(200)
    work = tmp_path / "work"
    one_line(cli("fcnjax.train", "--config", "configs/unet_isbi.py", "--workdir", work,
                 "--config.input.source=tfds", "--config.input.tfds_name=isbi2012",
                 f"--config.input.tfds_data_dir={tfds_dir}", "--config.input.train_ids=",
                 "--config.input.eval_ids=", timeout=180),
             "fcnjax.train: error:", "split 'train' of the prepared dataset isbi2012",
             shard.name, "prepare isbi2012 again")
    assert not work.exists()

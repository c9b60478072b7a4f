"""CPU smoke runs of the benchmark scripts test_benchmarks.py does not run: each script
runs end to end at tiny sizes and writes the figures it promises."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import tensorflow_datasets as tfds

from benchmarks import (augment_time, cpu_table, export_time, inference_memory,
                        input_pipeline, memory, profile_step, slide_agreement)
from fcnjax.data import builders  # noqa: F401  (registers the builders)
from tests.data.fakes import write_camvid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_profile_step_quick_times_each_variant_and_names_the_kernels(tmp_path):
    out = tmp_path / "profile.json"
    profile_step.main(["--quick", "--model", "unet", "--dtype", "float32",
                       "--variants", "base,pool_reduce_window+conv_window_padding", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"base", "pool_reduce_window+conv_window_padding"}
    assert all(v["ms"] > 0 and v["compile_s"] > 0 for v in result["variants"].values())
    names = [name for name, _, _ in result["kernels"]]
    assert any("convolution" in n or "conv" in n for n in names), names[:20]
    assert all(ms >= 0 for _, _, ms in result["kernels"])


def test_profile_step_refuses_an_unknown_variant():
    with pytest.raises(SystemExit, match="not one of"):
        profile_step.parse_args(["--variants", "base,faster"])


def test_augment_time_prints_a_row_per_operation(capsys):
    augment_time.main(["--size", "64", "--repeats", "2", "--batch", "2"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ops = [row["op"] for row in rows]
    assert ops[0] == "border_weights" and ops[-1].startswith("device_elastic.apply_warps")
    assert any("order=3" in op for op in ops) and any("order=1" in op for op in ops)
    assert all(row["seconds"] > 0 and row["shape"] == [64, 64] for row in rows)


def test_input_pipeline_times_prepared_camvid(tmp_path, capsys):
    manual = write_camvid(tmp_path / "CamVid", counts=(("train", 3), ("val", 1), ("test", 1)))
    tfds.builder("camvid", data_dir=str(tmp_path / "tfds")).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    capsys.readouterr()
    input_pipeline.main(["--tfds_data_dir", str(tmp_path / "tfds"), "--cores", "1",
                         "--batch_size", "2", "--batches", "2", "--crop", "32x48", "--json"])
    row, = [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")]
    assert row["cores"] == 1 and row["batch"] == 2 and row["crop"] == "32x48"
    assert row["images_per_s"] > 0


def test_gpu_suite_quick_runs_a_stage_on_the_cpu(tmp_path):
    env = dict(os.environ, QUICK="1", STAGES="compile_cold", SUITE_S="300",
               OUT=str(tmp_path), PYTHON=sys.executable, JAX_PLATFORMS="cpu")
    proc = subprocess.run(["bash", "benchmarks/gpu_suite.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert "=== compile_cold" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "compile_cold.jsonl").read_text().splitlines()]
    assert rows and rows[0]["model"] == "fcn8s" and rows[0]["dtype"] == "bfloat16"
    assert rows[0]["compile_s"] > 0 and rows[0]["ms"] > 0


def test_cpu_table_quick_puts_both_frameworks_on_each_row(tmp_path):
    out = tmp_path / "table.md"
    text = cpu_table.main(["--quick", "--models", "unet", "--out", str(out)])
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| unet")]
    assert [r.split(" | ")[0] for r in rows] == ["| unet forward 188x188",
                                                  "| unet train step 188x188"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "float32" and cells[2] == "1"
        assert float(cells[3]) > 0 and float(cells[6]) > 0 and cells[8].startswith("**")
    assert "fp32 peak estimate" in text.splitlines()[0]


def test_fp32_peak_is_cores_clock_lanes_and_two_fma_units():
    info = {"cores": 2, "mhz": 2600.0, "lanes": 16}
    assert cpu_table.fp32_peak(info) == 2 * 2.6e9 * 16 * 2 * 2


def test_inference_memory_quick_measures_each_row_in_its_own_process(tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    inference_memory.main(["--quick", "--rows", "unet:whole:60,unet:slide:60,fcn8s:whole:40",
                           "--budget_gb", "0.05", "--json", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    unet_whole, unet_slide, fcn = rows
    for row in (unet_whole, unet_slide):  # tiles of 44 and of 60: one compile each
        assert row["status"] == "ok" and row["compiles"] == 1 and row["seconds"] > 0
        assert 0.05 < row["peak_rss_gb"] < 4
    # FCN's whole-image forward needs more than the 0.05 GB budget: measured, not run
    assert fcn["status"].startswith("XLA needs") and fcn["xla_gb"] > 0.05
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| model | image | mode") and len(table) == 5


def test_inference_memory_refuses_a_malformed_row():
    with pytest.raises(SystemExit, match="model:mode:side"):
        inference_memory.parse_rows("fcn8s:whole:big")


def test_slide_agreement_scores_sliding_against_whole_image_prediction(tmp_path, capsys):
    from PIL import Image

    from configs import sample
    from fcnjax import models
    from fcnjax.run import checkpoint
    from fcnjax.run.state import create_train_state

    (tmp_path / "tiny.py").write_text(
        "from configs import sample\n\n\ndef get_config():\n    config = sample.get_config()\n"
        "    config.model.update({'features': 4, 'levels': 2})\n    return config\n")
    config = sample.get_config()
    config.model.update({"features": 4, "levels": 2})
    state = create_train_state(config, models.build(config.model),
                               jax.random.key(0, impl="rbg"), (1, 64, 64, 1))
    with checkpoint.make_manager(str(tmp_path / "work")) as manager:
        checkpoint.save(manager, 1, state)
        checkpoint.wait(manager)
    rng = np.random.default_rng(0)
    for sub in ("image", "label"):
        (tmp_path / "data" / "val" / sub).mkdir(parents=True)
    for name, size in (("3", (40, 56)), ("7", (40, 56)), ("8", (40, 56))):
        Image.fromarray(rng.integers(0, 256, size).astype(np.uint8)).save(
            tmp_path / "data" / "val" / "image" / f"{name}.png")
        Image.fromarray((rng.random(size) > 0.5).astype(np.uint8) * 255).save(
            tmp_path / "data" / "val" / "label" / f"{name}.png")
    slide_agreement.main(["--config", str(tmp_path / "tiny.py"), "--checkpoint",
                          str(tmp_path / "work"), "--data_dir", str(tmp_path / "data"),
                          "--ids", "3,7", "--window", "32", "--stride", "16"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 images of") and "mean IU" in lines[0]
    rows = [line.split("|")[1:-1] for line in lines[3:]]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [("16", "constant"),
                                                            ("16", "gaussian")]
    assert all(0 <= float(r[3]) <= 100 for r in rows)


def test_export_time_gives_the_artifact_size_and_both_times(capsys):
    rows = export_time.main(["--configs", os.path.join(ROOT, "configs", "sample.py"),
                             "--size", "32", "--repeats", "2", "--warmup", "1", "--json"])
    row, = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row == rows[0] and row["model"] == "unet" and row["size"] == "32x32"
    assert row["artifact_mb"] > 1 and row["artifact_ms"] > 0 and row["jit_ms"] > 0
    assert row["repeats"] == 2


def test_memory_reports_the_step_of_a_tiny_unet_and_remat_keeps_fewer_residuals(capsys):
    row, = memory.main(["--models", "unet", "--unet_features", "2", "--unet_levels", "1",
                        "--unet_size", "20", "--time_unet_size", "20", "--batch", "1",
                        "--budgets", "", "--repeats", "1", "--json", "--policies", "stages"])
    assert row["remat"] == "stages" and row["size"] == "1x20x20"
    assert row["total_gb"] == pytest.approx(row["argument_gb"] + row["output_gb"]
                                            - row["alias_gb"] + row["temp_gb"])
    assert row["temp_gb"] > 0 and row["step_ms"] > 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    kept = {}
    for policy in ("none", "stages"):
        config = memory.model_config("unet", policy, unet_features=2, unet_levels=1)
        kept[policy] = memory.residual_bytes(config, memory.abstract_state(config),
                                             memory.batch_specs(config, 1, (20, 20)))
    assert kept["stages"] < kept["none"]  # the backward pass keeps less


def test_memory_largest_batch_bisects_from_the_affine_guess():
    compiled = []

    def total_of(batch):
        compiled.append(batch)
        return 100 + 10 * batch + (5 if batch > 30 else 0)  # not quite affine

    known = {1: total_of(1), 8: total_of(8)}
    assert memory.largest_batch(total_of, 405, known) == 30  # guess 30 fits, 31 not
    assert memory.largest_batch(total_of, 700, known) == 59  # guess 60 misses by the 5
    assert memory.largest_batch(total_of, 50, {1: 110}) == 0
    assert len(compiled) <= 8

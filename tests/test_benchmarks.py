"""Benchmarks: smoke runs on CPU, and the PyTorch versions are the same networks as ours.

The scripts run in subprocesses (as users run them) at their ``--quick`` sizes. XLA's CPU
backend in jax 0.10 fuses the whole VGG trunk into one YNNPACK fusion that runs FCN-VGG
1.3x slower than with the fusion off (and ~20x slower when fc7 sees a 2x2 map, i.e. 32-48
pixel inputs; see BENCHMARKS.md); the fixture turns that fusion off for these runs when
the installed XLA knows the flag.
"""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import common, torch_models  # noqa: E402
from fcnjax import models  # noqa: E402
from fcnjax.models.layers import count_params  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def conv_params(inputs, outputs, kernel=3):
    """Weights and biases of a dense kernel x kernel convolution."""
    return (inputs * kernel * kernel + 1) * outputs


VGG16_CONVS = (conv_params(3, 64) + conv_params(64, 64) + conv_params(64, 128)
               + conv_params(128, 128) + conv_params(128, 256) + 2 * conv_params(256, 256)
               + conv_params(256, 512) + 5 * conv_params(512, 512))
FCN32S_PARAMS = (VGG16_CONVS + conv_params(512, 4096, 7) + conv_params(4096, 4096, 1)
                 + conv_params(4096, 21, 1))  # fc6 and fc7 as convolutions, score_fr
FCN8S_PARAMS = FCN32S_PARAMS + conv_params(512, 21, 1) + conv_params(256, 21, 1)
"""The paper's layer table counted by hand: fixed upsampling has no parameters."""


@pytest.fixture(scope="module")
def cpu_env():
    """Environment for the benchmark subprocesses: CPU only (fcnjax.run.xla picks the fast
    convolutions itself)."""
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)


def run_json(module, args, env):
    """Run ``python -m benchmarks.<module> --json ...``; returns its JSON rows."""
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--json", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert rows, proc.stderr[-3000:]
    return rows


def test_forward_time_quick_times_every_table1_model(cpu_env):
    rows = run_json("forward_time", ["--quick", "--dtypes", "float32", "--batch", "1",
                                     "--repeats", "1"], cpu_env)
    assert [r["model"] for r in rows] == list(__import__(
        "benchmarks.forward_time", fromlist=["MODELS"]).MODELS)
    for row in rows:
        assert row["ms"] > 0 and row["compile_s"] > 0 and row["img_s"] > 0
        assert row["gflop_per_image"] > 0 and row["tflop_s"] > 0
        assert row["device"] and row["jax"] == jax.__version__
    by_model = {r["model"]: r for r in rows}
    assert by_model["fcn8s"]["params"] == FCN8S_PARAMS
    for row in rows:  # the paper's K40c times are for 500x500: none beside a 64x64 row
        assert "k40c_ms" not in row and "speedup_vs_k40c" not in row, row
    assert by_model["unet"]["height"] == 188  # the smallest side the valid U-Net takes


def test_forward_time_quick_torch_adds_ratio_columns(cpu_env):
    rows = run_json("forward_time", ["--quick", "--dtypes", "float32", "--batch", "1",
                                     "--repeats", "1", "--torch", "--no-compile",
                                     "--models", "fcn_alexnet,fcn_googlenet,unet"], cpu_env)
    for row in rows:
        assert row["torch_eager_ms"] > 0
        assert row["jax_over_eager"] == pytest.approx(row["ms"] / row["torch_eager_ms"],
                                                      rel=1e-2)
        assert "torch_compile_ms" not in row


def test_train_step_quick_runs_fcn8s_and_unet(cpu_env):
    rows = run_json("train_step", ["--quick", "--dtypes", "float32"], cpu_env)
    assert [r["model"] for r in rows] == ["fcn8s", "unet"]
    for row in rows:
        assert row["ms"] > 0 and row["img_s"] > 0 and row["compile_s"] > 0
        assert row["gflop_per_image"] > 0 and np.isfinite(row["loss"])


def test_train_step_quick_torch_eager_has_sgd_and_label_columns(cpu_env):
    rows = run_json("train_step", ["--quick", "--dtypes", "float32", "--models", "unet",
                                   "--torch", "--no-compile"], cpu_env)
    (row,) = rows
    assert (row["label_height"], row["label_width"]) == (4, 4)  # valid U-Net: 188 -> 4
    assert row["torch_sgd"] == ("fused" if _fused_on_cpu() else "foreach")
    assert row["torch_eager_ms"] > 0 and row["torch_eager_first_s"] > 0
    assert np.isfinite(row["torch_eager_loss"]) and row["torch_tf32"] is False
    assert row["jax_over_eager"] == pytest.approx(row["ms"] / row["torch_eager_ms"], rel=1e-2)
    assert "torch_compile_ms" not in row and "torch_compile_error" not in row


def _fused_on_cpu():
    """Whether fused SGD runs on a CPU tensor in this torch."""
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    try:
        torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True).step()
    except RuntimeError:
        return False
    return True


def test_torch_sgd_groups_and_confusion_match_ours():
    from benchmarks import train_step
    from fcnjax import metrics
    assert train_step.fused_sgd_supported("cpu") == _fused_on_cpu()
    assert train_step.fused_sgd_supported("cuda")
    net = torch_models.build("unet", in_channels=1)
    weights, biases = train_step.torch_param_groups(net)
    assert weights["weight_decay"] == 5e-4 and "lr" not in weights
    assert biases["weight_decay"] == 0.0 and biases["lr"] == 2e-4
    assert len(weights["params"]) + len(biases["params"]) == len(list(net.parameters()))
    labels = np.random.default_rng(0).integers(0, 4, (2, 5, 6))
    labels[0, 0, :3] = train_step.IGNORE_LABEL
    predictions = np.random.default_rng(1).integers(0, 3, (2, 5, 6))
    theirs = train_step.torch_confusion(torch.from_numpy(labels), torch.from_numpy(predictions), 3)
    ours = metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(predictions), 3)
    np.testing.assert_array_equal(theirs.numpy(), np.asarray(ours))


def torch_row(args_list=()):
    """A JAX row of the quick U-Net step, without running JAX (only what torch reads)."""
    from benchmarks import train_step
    args = train_step.parse_args(["--quick", "--models", "unet", "--repeats", "1",
                                  "--torch", *args_list])
    row = {"model": "unet", "dtype": "float32", "batch": 1, "height": 188, "width": 188,
           "classes": 2, "label_height": 4, "label_width": 4, "ms": 100.0}
    return row, args


def test_torch_compile_failure_is_recorded_and_the_row_kept(monkeypatch):
    from benchmarks import train_step

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    row, args = torch_row()
    train_step.time_torch_step("unet", row, args)
    assert row["torch_eager_ms"] > 0 and row["torch_sgd"] in ("fused", "foreach")
    assert row["torch_compile_error"] == "RuntimeError: no C++ compiler"
    assert "torch_compile_ms" not in row and "torch_compile_sgd_error" not in row


def test_torch_compiled_optimizer_failure_falls_back_to_the_eager_step(monkeypatch):
    from benchmarks import train_step

    def model_only(fn, **kwargs):  # "compiles" the forward as is; the optimizer step fails
        if getattr(fn, "__name__", "") == "step":
            raise RuntimeError("optimizer step does not compile")
        return fn

    monkeypatch.setattr(torch, "compile", model_only)
    row, args = torch_row()
    train_step.time_torch_step("unet", row, args)
    assert row["torch_compile_ms"] > 0 and row["torch_compile_s"] > 0
    assert row["torch_compile_sgd"] == row["torch_sgd"]
    assert row["torch_compile_sgd_error"] == "RuntimeError: optimizer step does not compile"
    assert row["jax_over_compile"] == pytest.approx(100.0 / row["torch_compile_ms"], rel=1e-2)
    assert "torch_compile_error" not in row


def test_train_step_compile_models_must_be_known():
    from benchmarks import train_step
    assert train_step.parse_args(["--compile-models", "fcn8s"]).compile_models == ["fcn8s"]
    assert train_step.parse_args([]).compile_models == ["fcn8s", "unet"]
    with pytest.raises(SystemExit):
        train_step.parse_args(["--compile-models", "vgg"])


def test_describe_prints_table1_columns(capsys):
    from benchmarks import forward_time
    rows = forward_time.main(["--describe", "--json", "--models", "fcn32s,unet"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == rows
    assert rows[0]["params"] == FCN32S_PARAMS and rows[0]["crop_offsets"] == {"score": 19}
    assert rows[1]["max_stride"] == 16


def fake_row(name, side, ms=2000.0, batch=1, compile_s=1.0):
    """A row of forward_time.make_row from made-up timings: nothing is compiled or run."""
    from benchmarks import forward_time
    times = [ms / 1e3] * 3
    return forward_time.make_row(name, "float32", (batch, side, side, 3), 1_000_000,
                                 {"flops": 1e11 * batch, "bytes": 1e9}, compile_s, times, 3)


def test_k40c_columns_only_beside_rows_at_500x500():
    from benchmarks import forward_time
    at_500 = fake_row("fcn32s", 500, ms=3000.0, batch=2)
    assert at_500["k40c_ms"] == 210 and at_500["speedup_vs_k40c"] == pytest.approx(210 / 1500)
    no_figure = fake_row("fcn8s", 500)  # at 500x500 but Table 1 has no K40c time for it
    assert "k40c_ms" in no_figure and no_figure["k40c_ms"] is None
    for row in (fake_row("fcn32s", 64), fake_row("fcn_alexnet", 256), fake_row("unet", 572)):
        assert "k40c_ms" not in row and "speedup_vs_k40c" not in row
    table = common.format_table([fake_row("fcn32s", 64)], forward_time.COLUMNS)
    assert "K40c" not in table
    assert "K40c ms" in common.format_table([at_500], forward_time.COLUMNS)


def test_gpu_default_is_table1_run_without_a_notice():
    from benchmarks import forward_time
    for argv, backend in (([], "gpu"), ([], "tpu"), (["--full"], "cpu")):
        args = forward_time.parse_args(argv, backend)
        assert args.run == "paper" and args.notice is None
        assert (args.dtypes, args.batch, args.size, args.unet_size, args.repeats,
                args.warmup) == (["float32", "bfloat16"], [1, 16], 500, 572, 50, 5)
    with pytest.raises(SystemExit):
        forward_time.parse_args(["--quick", "--full"], "cpu")


def test_cpu_default_is_a_cpu_sized_run_that_says_so():
    from benchmarks import forward_time
    args = forward_time.parse_args([], "cpu")
    assert args.run == "cpu"
    assert (args.dtypes, args.batch, args.size, args.unet_size, args.repeats,
            args.warmup) == (["float32"], [1], 500, 572, 3, 1)
    assert args.notice.startswith("CPU backend: timing a CPU-sized run (float32, batch 1, "
                                  "500x500 (U-Net 572x572), 1 warm-up + 3 timed calls")
    assert "pass --full for the paper's Table 1 run" in args.notice
    assert "about 470x as many forward passes" in args.notice  # 2 x 55 x 17 images / 4
    assert "estimate of its time here" in args.notice and "--quick" in args.notice
    given = forward_time.parse_args(["--repeats", "7", "--size", "64"], "cpu")
    assert (given.repeats, given.size, given.batch) == (7, 64, [1])  # a flag given wins
    assert "CPU-sized" in given.notice and "estimate" not in given.notice  # not at 500x500
    every = ["--dtypes", "float32", "--batch", "1", "--size", "64", "--unet-size", "188",
             "--repeats", "1", "--warmup", "0"]
    assert forward_time.parse_args(every, "cpu").notice is None  # nothing left to default
    assert forward_time.parse_args(["--quick"], "cpu").notice is None


def test_cpu_sized_run_prints_notice_first_and_estimates_full(monkeypatch, capsys):
    from benchmarks import forward_time
    monkeypatch.setattr(forward_time, "time_jax_model",
                        lambda name, args, key, first=0: [fake_row(name, 500)])
    rows = forward_time.main(["--models", "fcn32s"], backend="cpu")
    out, err = capsys.readouterr()
    assert err.startswith("CPU backend: timing a CPU-sized run")
    assert "CPU-sized run, not Table 1's (--full)" in out.splitlines()[0]
    assert "K40c ms" in out and rows[0]["k40c_ms"] == 210
    # 2 s per image x (2 dtypes x 55 calls x (1 + 16) images) + 4 compiles of 1 s: 62 min
    assert "would take about 62 min here" in out


def test_cpu_run_logs_each_row_before_it_starts(capsys):
    from benchmarks import forward_time
    rows = forward_time.main(["--models", "fcn_googlenet", "--size", "64", "--json",
                              "--repeats", "1", "--warmup", "0"], backend="cpu")
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == rows
    assert "k40c_ms" not in rows[0]
    lines = err.splitlines()
    assert lines[0].startswith("CPU backend: timing a CPU-sized run")
    start = next(i for i, line in enumerate(lines) if line.startswith("[1/1]"))
    assert lines[start] == ("[1/1] fcn_googlenet float32 batch 1 64x64: compiling, then "
                            "0 warm-up + 1 timed calls")
    assert "fcn_googlenet float32 b1: compile" in lines[start + 1]
    assert not any("would take about" in line for line in lines)  # 64x64: no estimate


@pytest.mark.parametrize("name", sorted(torch_models.MODELS))
def test_torch_version_has_our_parameter_count(name):
    channels = common.IMAGE_CHANNELS.get(name, 3)
    kwargs = {"in_channels": channels} if name == "unet" else {}
    with torch.device("meta"):
        theirs = torch_models.count_params(torch_models.build(name, **kwargs))
    image = jax.ShapeDtypeStruct((1, 188, 188, channels), jnp.float32)
    model = models.build({"name": name})
    ours = count_params(jax.eval_shape(model.init, jax.random.key(0), image)["params"])
    assert theirs == ours


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s", "fcn_alexnet", "fcn_googlenet"])
def test_torch_crop_offsets_are_the_ones_our_geometry_derives(name):
    plan = models.build({"name": name}).plan()
    with torch.device("meta"):
        head = torch_models.build(name).head
    assert [(f.layer, f.offset) for f in plan.fusions] == list(head.skips)
    assert all((f.kernel, f.stride) == (4, 2) for f in plan.fusions)
    assert (plan.kernel, plan.stride, plan.offset) == (head.kernel, head.stride, head.offset)


# Torch module path -> our parameter path, per family (weights move by name, not order).
RENAMES = [
    (r"^trunk\.stages\.\d+\.(conv\d_\d)\.conv\.", r"trunk.\1."),
    (r"^trunk\.classifier\.(fc\d)\.conv\.", r"trunk.\1."),
    (r"^trunk\.features\.(inception_\w+)\.branch1\.conv\.", r"trunk.\1.1x1."),
    (r"^trunk\.features\.(inception_\w+)\.branch3\.0\.conv\.", r"trunk.\1.3x3_reduce."),
    (r"^trunk\.features\.(inception_\w+)\.branch3\.1\.conv\.", r"trunk.\1.3x3."),
    (r"^trunk\.features\.(inception_\w+)\.branch5\.0\.conv\.", r"trunk.\1.5x5_reduce."),
    (r"^trunk\.features\.(inception_\w+)\.branch5\.1\.conv\.", r"trunk.\1.5x5."),
    (r"^trunk\.features\.(inception_\w+)\.branch_pool\.1\.conv\.", r"trunk.\1.pool_proj."),
    (r"^trunk\.features\.(\w+)\.conv\.", r"trunk.\1."),
    (r"^down\.(\d)\.(\d)\.conv\.", lambda m: f"down{int(m[1]) + 1}_conv{int(m[2]) + 1}."),
    (r"^bottom\.(\d)\.conv\.", lambda m: f"bottom_conv{int(m[1]) + 1}."),
    (r"^upconv\.(\d)\.", lambda m: f"up{4 - int(m[1])}."),
    (r"^up\.(\d)\.(\d)\.conv\.", lambda m: f"up{4 - int(m[1])}_conv{int(m[2]) + 1}."),
    (r"^classifier\.", "score."),
]


def load_ours_into_torch(params, net):
    """Copy our NHWC/HWIO parameters into the NCHW/OIHW torch net; every tensor once."""
    flat = {".".join(k.key for k in path): leaf
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
    used = set()
    state = {}
    for name, tensor in net.named_parameters():
        path = name
        for pattern, repl in RENAMES:
            path = re.sub(pattern, repl, path)
        path = path.replace(".weight", ".kernel")
        value = np.asarray(flat[path])
        used.add(path)
        if path.endswith("kernel"):  # HWIO -> OIHW; a transposed conv's (k, k, I, O) -> IOHW
            transposed = isinstance(net.get_submodule(name.rsplit(".", 1)[0]),
                                    torch.nn.ConvTranspose2d)
            value = value.transpose(2, 3, 0, 1) if transposed else value.transpose(3, 2, 0, 1)
        state[name] = torch.from_numpy(np.array(value))
    assert used == set(flat)
    net.load_state_dict(state, strict=False)


@pytest.mark.parametrize("name,side", [("fcn8s", (61, 70)), ("fcn_alexnet", (45, 38)),
                                       ("fcn_googlenet", (40, 29)), ("unet", (188, 204))])
def test_torch_version_computes_our_outputs_with_our_weights(name, side):
    channels = common.IMAGE_CHANNELS.get(name, 3)
    image = jax.random.normal(jax.random.key(1), (1, *side, channels))
    model = models.build({"name": name})
    params = common.random_params(
        jax.eval_shape(model.init, jax.random.key(0), image)["params"], 2)
    ours = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(params, image))
    kwargs = {"in_channels": channels} if name == "unet" else {}
    net = torch_models.build(name, **kwargs).eval()
    load_ours_into_torch(params, net)
    with torch.inference_mode():
        theirs = net(torch.from_numpy(np.array(image)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    assert theirs.shape == ours.shape
    scale = np.abs(ours).max()
    assert scale > 0
    np.testing.assert_allclose(theirs.numpy() / scale, ours / scale, atol=2e-5)

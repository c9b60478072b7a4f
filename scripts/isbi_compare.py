"""U-Net as the paper trained it on ISBI 2012, in fcnjax and in PyTorch, same recipe and time.

    python scripts/isbi_compare.py --data_dir /data/isbi2012 --out /tmp/isbi/results.json
    python scripts/isbi_compare.py --data_dir /data/isbi2012 --out /tmp/q.json --quick  # CPU

``data_dir`` holds ``train/image/N.png``, ``train/label/N.png`` (255 cell, 0 membrane) and
``test/N.png``, N = 0 .. 29 (the layout of zhixuhao/unet's copy of the challenge data).
Fixed split: images 0-24 train, 25-29 validation (``--train_ids``, ``--val_ids``).

Recipe, identical for both frameworks: the paper's valid-padding U-Net (64 channels, 4
levels, dropout 0.5 ending the contracting path, He init std sqrt(2/N)); batches of one
572x572 tile cut from the image mirrored by the net's context (label void there); border
weight map w0 = 10, sigma = 5 px plus median-frequency class balance of the training
labels; elastic deformation (3x3 grid, std 10 px) with rotation, shift, mirrors and grey
values; softmax cross-entropy weighted by the map, mean over labelled pixels; SGD with
momentum 0.99 at a constant rate. Both see the same sequence of examples (example k is
drawn from its own seed), made by ``--workers`` host processes, and train for the same
wall-clock ``--seconds`` (compilation included; it is also reported apart).

Evaluation: overlap-tile prediction of each whole validation image, averaged over the 8
rotations and mirrors, scored with the challenge's Rand error and pixel error
(:mod:`fcnjax.isbi_metrics`). Membrane maps of the test images are written as PNGs in
``<out dir>/<framework>_test/N.png``, 255 * (1 - p_membrane): black membranes, white cells,
like the labels. All figures go to ``--out`` as JSON.

Needs jax, flax, optax, numpy, scipy, Pillow and torch; not grain, tensorflow-datasets or
ml_collections.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import multiprocessing
import os
import pathlib
import platform
import sys
import time
from collections import deque
from typing import Any, Callable, Iterator

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from fcnjax import inference, isbi_metrics, losses
from fcnjax.data import classes, elastic, weight_map
from fcnjax.data.ids import parse_ids
from fcnjax.models.unet import unet_geometry

IGNORE = losses.IGNORE_LABEL


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--out", required=True, help="JSON file for the figures")
    p.add_argument("--frameworks", default="jax,torch")
    p.add_argument("--train_ids", default="0-24")
    p.add_argument("--val_ids", default="25-29")
    p.add_argument("--seconds", type=float, default=1800.0, help="training time per framework")
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--tile", type=int, default=572)
    p.add_argument("--learning_rate", type=float, default=0.001)
    p.add_argument("--momentum", type=float, default=0.99)
    p.add_argument("--elastic_std", type=float, default=10.0)
    p.add_argument("--max_rotation", type=float, default=180.0)
    p.add_argument("--max_shift", type=float, default=10.0)
    p.add_argument("--contrast", type=float, default=0.1)
    p.add_argument("--brightness", type=float, default=0.1)
    p.add_argument("--order", type=int, default=1, help="image/weight resampling: 1 or 3")
    p.add_argument("--w0", type=float, default=weight_map.W0)
    p.add_argument("--sigma", type=float, default=weight_map.SIGMA)
    p.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 2)))
    p.add_argument("--no_tta", action="store_true", help="skip the 8-way test-time averaging")
    p.add_argument("--max_val", type=int, default=0, help="score only the first N val images")
    p.add_argument("--max_test", type=int, default=30, help="test images to predict")
    p.add_argument("--eval_batch", type=int, default=4, help="tiles per forward at eval")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prng_impl", default="threefry2x32",
                   help='JAX PRNG; "rbg" compiles much faster on CPU')
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: 8 channels, 3 levels, 380 tiles, 20 s, 2 val and "
                        "1 test image, no test-time averaging")
    args = p.parse_args(argv)
    if args.quick:
        defaults = {"features": 64, "levels": 4, "tile": 572, "seconds": 1800.0,
                    "max_test": 30}
        quick = {"features": 8, "levels": 3, "tile": 380, "seconds": 20.0, "max_test": 1}
        for key, value in quick.items():
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)
        args.max_val = args.max_val or 2
        args.no_tta = True
    return args


# --- data ---------------------------------------------------------------------------------

def read_gray(path: pathlib.Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def load_split(data_dir: str, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 (N, H, W, 1) scaled to [-1, 1]; labels int32 (N, H, W), 1 cell, 0 membrane."""
    root = pathlib.Path(data_dir) / "train"
    images = [read_gray(root / "image" / f"{i}.png") for i in ids]
    labels = [read_gray(root / "label" / f"{i}.png") for i in ids]
    return (np.stack(images)[..., None].astype(np.float32) / 127.5 - 1.0,
            (np.stack(labels) > 127).astype(np.int32))


def load_test(data_dir: str, limit: int) -> list[tuple[str, np.ndarray]]:
    root = pathlib.Path(data_dir) / "test"
    paths = sorted(root.glob("*.png"), key=lambda p: (len(p.stem), p.stem))
    paths = [p for p in paths if p.stem.isdigit()][:limit]
    return [(p.stem, read_gray(p)[..., None].astype(np.float32) / 127.5 - 1.0) for p in paths]


_WORKER: dict[str, Any] = {}


def _init_worker(state: dict[str, Any]) -> None:
    _WORKER.update(state)


def make_example(k: int) -> dict[str, np.ndarray]:
    """Training example ``k``: a tile of a random image with mirrored context, augmented.

    Drawn from its own seed (seed, k), so the sequence does not depend on the workers.
    """
    s = _WORKER
    rng = np.random.default_rng([s["seed"], k])
    i = int(rng.integers(len(s["images"])))
    image, label, weight = s["images"][i], s["labels"][i], s["weights"][i]
    c, tile = s["context"], s["tile"]
    pads = [(c, max(c, tile - n - c)) for n in label.shape]
    image = np.pad(image, pads + [(0, 0)], mode="reflect")
    label = np.pad(label, pads, constant_values=IGNORE)
    weight = np.pad(weight, pads)
    top, left = (int(rng.integers(n - tile + 1)) for n in label.shape)
    window = (slice(top, top + tile), slice(left, left + tile))
    example = {"image": image[window], "label": label[window], "weight": weight[window]}
    return elastic.augment(example, rng, **s["augment"])


def examples(state: dict[str, Any], workers: int, prefetch: int = 16
             ) -> Iterator[dict[str, np.ndarray]]:
    """Examples 0, 1, 2, ... made by ``workers`` spawned processes (in order)."""
    if workers <= 0:
        _init_worker(state)
        k = 0
        while True:
            yield make_example(k)
            k += 1
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                initializer=_init_worker,
                                                initargs=(state,)) as pool:
        pending, k = deque(), 0
        while True:
            while len(pending) < prefetch:
                pending.append(pool.submit(make_example, k))
                k += 1
            yield pending.popleft().result()


def centre(x: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` of the first two axes."""
    top, left = ((n - size) // 2 for n in x.shape[:2])
    return x[top:top + size, left:left + size]


# --- fcnjax --------------------------------------------------------------------------------

def jax_trainer(args: argparse.Namespace, plan: inference.TilePlan):
    import jax
    import jax.numpy as jnp
    import optax

    from fcnjax.run import xla
    from fcnjax.models.unet import UNet

    model = UNet(num_classes=2, features=args.features, levels=args.levels, padding="valid",
                 dropout=0.5)
    key = jax.random.key(args.seed, impl=args.prng_impl)
    params = jax.jit(model.init)(key, jnp.zeros((1, args.tile, args.tile, 1)))["params"]
    tx = optax.sgd(args.learning_rate, momentum=args.momentum)
    state = (params, tx.init(params))

    def loss_fn(params, image, label, weight, dropout_key):
        logits = model.apply({"params": params}, image, train=True,
                             rngs={"dropout": dropout_key})
        loss, _ = losses.segmentation_loss(logits, label, reduction="mean", weights=weight)
        return loss

    @functools.partial(xla.jit, donate_argnums=(0,))
    def step(state, image, label, weight, step_key):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, image, label, weight, step_key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def train_step(state, k, ex):
        out = plan.out
        batch = (ex["image"][None], centre(ex["label"], out)[None],
                 centre(ex["weight"], out)[None])
        return step(state, *batch, jax.random.fold_in(key, k))

    @xla.jit
    def probabilities(params, tiles):
        return jax.nn.softmax(model.apply({"params": params}, tiles, train=False), -1)

    def predictor(state):
        return lambda tiles: np.asarray(probabilities(state[0], tiles))

    def block(x):
        return jax.block_until_ready(x)

    return state, train_step, predictor, block


# --- PyTorch -------------------------------------------------------------------------------

def torch_trainer(args: argparse.Namespace, plan: inference.TilePlan):
    import torch
    import torch.nn.functional as F

    from benchmarks.torch_models import UNet

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    model = UNet(in_channels=1, num_classes=2, features=args.features, levels=args.levels,
                 padding="valid", dropout=0.5)
    with torch.no_grad():  # the paper's init: N(0, 2 / N), N = inputs of one output cell
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                w = module.weight
                fan_in = (w.shape[1] * w[0, 0].numel() if isinstance(module, torch.nn.Conv2d)
                          else w.shape[0])  # 2x2 stride-2 up-conv: one input cell
                w.normal_(0.0, (2.0 / fan_in) ** 0.5)
                module.bias.zero_()
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=args.momentum)

    def to_device(x):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device, non_blocking=True)

    def train_step(state, k, ex):
        model.train()
        image = to_device(ex["image"].transpose(2, 0, 1)[None])
        label = to_device(centre(ex["label"], plan.out)[None].astype(np.int64))
        weight = to_device(centre(ex["weight"], plan.out)[None])
        logits = model(image)
        per_pixel = F.cross_entropy(logits, label, ignore_index=IGNORE, reduction="none")
        labelled = (label != IGNORE).sum().clamp(min=1)
        loss = (per_pixel * weight).sum() / labelled
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return state, loss.detach()

    @torch.no_grad()
    def probabilities(tiles):
        model.eval()
        x = to_device(tiles.transpose(0, 3, 1, 2))
        return torch.softmax(model(x), 1).permute(0, 2, 3, 1).cpu().numpy()

    def block(x):
        if device == "cuda":
            torch.cuda.synchronize()
        return float(x)

    return None, train_step, lambda state: probabilities, block


# --- train, evaluate, predict --------------------------------------------------------------

def train(trainer, stream: Iterator[dict[str, np.ndarray]], seconds: float) -> dict[str, Any]:
    """Run steps until ``seconds`` have passed (the first step, with its compile, counted)."""
    state, step, predictor, block = trainer
    ex = next(stream)  # the workers are up before the clock starts
    start = time.perf_counter()
    state, loss = step(state, 0, ex)
    first = block(loss)
    first_seconds = time.perf_counter() - start
    steps, wait, recent = 1, 0.0, []
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        ex = next(stream)
        wait += time.perf_counter() - t
        state, loss = step(state, steps, ex)
        steps += 1
        if steps % 50 == 0:
            recent.append(float(block(loss)))
    last = float(block(loss))
    total = time.perf_counter() - start
    return {"state": state, "steps": steps, "train_seconds": total,
            "first_step_seconds": first_seconds,
            "steps_per_second_after_first": (steps - 1) / max(total - first_seconds, 1e-9),
            "data_wait_seconds": wait, "first_loss": float(first), "last_loss": last,
            "loss_every_50": recent}


def membrane_map(tile_fn: Callable, image: np.ndarray, plan: inference.TilePlan,
                 tta: bool, batch: int) -> np.ndarray:
    """p(membrane), float32 (H, W): overlap-tile prediction, optionally 8-way averaged."""
    def predict(x):
        return inference.predict_tiled(tile_fn, x, plan, batch_size=batch)
    probs = inference.dihedral_average(predict, image) if tta else predict(image)
    return probs[..., 0]


def evaluate(tile_fn, images, labels, plan, tta, batch) -> dict[str, Any]:
    start = time.perf_counter()
    membranes = np.stack([membrane_map(tile_fn, im, plan, tta, batch) for im in images])
    seconds = time.perf_counter() - start
    return {**isbi_metrics.isbi_scores(membranes, labels == 1), "eval_seconds": seconds,
            "tta": tta}


def write_test_maps(tile_fn, test, plan, tta, batch, folder: pathlib.Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in test:
        cells = 1.0 - membrane_map(tile_fn, image, plan, tta, batch)
        Image.fromarray(np.clip(np.rint(255 * cells), 0, 255).astype(np.uint8)).save(
            folder / f"{name}.png")
    return len(test)


def machine() -> dict[str, Any]:
    import jax
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "jax": jax.__version__,
            "jax_devices": [d.device_kind for d in jax.devices()]}
    try:
        import torch
        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["torch_device"] = torch.cuda.get_device_name()
    except ImportError:
        info["torch"] = None
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    geometry = unet_geometry(args.levels, "valid")
    plan = inference.unet_plan(geometry, args.tile)
    train_images, train_labels = load_split(args.data_dir, parse_ids(args.train_ids))
    val_ids = parse_ids(args.val_ids)[:args.max_val or None]
    val_images, val_labels = load_split(args.data_dir, val_ids)
    test = load_test(args.data_dir, args.max_test)
    class_weights = classes.median_frequency_weights(
        weight_map.class_counts(train_labels, 2))
    start = time.perf_counter()
    weights = np.stack([weight_map.border_weights(l, class_weights=class_weights, w0=args.w0,
                                                  sigma=args.sigma) for l in train_labels])
    weight_seconds = time.perf_counter() - start
    state = {"images": train_images, "labels": train_labels, "weights": weights,
             "seed": args.seed, "context": plan.context, "tile": args.tile,
             "augment": dict(elastic_std=args.elastic_std, max_rotation=args.max_rotation,
                             max_shift=args.max_shift, contrast=args.contrast,
                             brightness=args.brightness, order=args.order)}
    out_path = pathlib.Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(),
              "args": {k: v for k, v in vars(args).items()},
              "split": {"train": parse_ids(args.train_ids), "val": val_ids,
                        "test_predicted": [name for name, _ in test]},
              "plan": {"tile": plan.tile, "out": plan.out, "context": plan.context,
                       "step": plan.step},
              "class_weights": class_weights.tolist(),
              "border_weight_seconds_per_image": weight_seconds / len(train_labels)}
    trainers = {"jax": jax_trainer, "torch": torch_trainer}
    for name in args.frameworks.split(","):
        print(f"[{name}] training for {args.seconds:.0f} s ...", flush=True)
        trainer = trainers[name](args, plan)
        stream = examples(state, args.workers)
        try:
            result = train(trainer, stream, args.seconds)
        finally:
            stream.close()
        tile_fn = trainer[2](result.pop("state"))
        tta = not args.no_tta
        result["val"] = evaluate(tile_fn, val_images, val_labels, plan, tta, args.eval_batch)
        start = time.perf_counter()
        result["test_pngs"] = write_test_maps(tile_fn, test, plan, tta, args.eval_batch,
                                              out_path.parent / f"{name}_test")
        result["test_seconds"] = time.perf_counter() - start
        report[name] = result
        print(f"[{name}] {result['steps']} steps in {result['train_seconds']:.1f} s; val "
              + ", ".join(f"{k} {v:.4f}" for k, v in result["val"].items()
                          if isinstance(v, float)), flush=True)
        out_path.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()

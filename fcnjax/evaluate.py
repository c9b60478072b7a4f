"""Score a checkpoint on a split: the paper's table (pixel acc., mean acc., mean IU, f.w. IU)
and per-class IoU and Dice.

    python -m fcnjax.evaluate --config configs/sample.py --checkpoint /tmp/fcnjax_sample

``--checkpoint`` is a workdir (its newest checkpoint), its ``checkpoints/`` or ``best/``
folder (``best`` holds the best evaluation by mean IU), or one ``<step>`` folder in them;
``--workdir DIR`` (the old spelling) still works for one release, with a deprecation line. ``--split`` defaults to
``config.input.eval_split``. Prints the table and writes it as JSON to
``<workdir>/eval_<split>_<step>.json``. A checkpoint of another model is refused with a
message naming the arrays that do not fit. ``config.eval.weights`` picks the trained weights
or their moving average (``optim.ema_decay``; :func:`fcnjax.run.state.restore_for_eval`).

ISBI 2012 (``config.eval.isbi_challenge``; 2 classes, membrane = class 0, cell = class 1):
the report and the JSON (key ``"isbi2012"``)
also have the challenge's scores of the split's whole images (:func:`challenge_metrics`,
:func:`fcnjax.isbi_metrics.challenge_scores`): V_Rand and V_Info after thinning (the 2016
leaderboard's) and the unthinned Rand and pixel errors (2012's, the U-Net paper's table).
Single-process runs only: the model runs once more over the images, on the host's devices.

Scoring is data parallel over ``config.mesh``, as training is (:mod:`fcnjax.run.parallel`): each
eval batch is padded with void examples to a multiple of the devices and split over them. A
checkpoint restores on any number of devices, whatever it was written on. With
``config.eval.mode = "slide"`` or test-time augmentation (``config.eval.scales``,
``config.eval.flip``) each image is predicted on the host's devices through
:func:`fcnjax.inference.image_forward` instead (:func:`fcnjax.objective.forward_eval_fn`).
Multi-host: run the same command in every process (``JAX_COORDINATOR_ADDRESS`` ...); process 0 prints and writes.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections

from fcnjax import inference, objective
from fcnjax.data.classes import class_names
from fcnjax.run import checkpoint, compile_cache, errors, parallel, reporting
from fcnjax.run import state as run_state


def evaluate_checkpoint(config: ml_collections.ConfigDict, path: str,
                        split: str | None = None, challenge: bool = False) -> dict[str, Any]:
    """Score the checkpoint ``path`` names on ``split`` (default: the eval split).

    Returns ``{"step", "split", "loss", "pixel_acc", "mean_acc", "mean_iu", "fw_iu",
    "mean_dice", "class_iu", "class_dice"}``; ``challenge``: with ``"isbi2012"`` too, the
    dict of :func:`challenge_metrics`.
    """
    from fcnjax.data import pipeline

    inference.check_eval(config)
    split = split or config.input.eval_split
    mesh = parallel.mesh_from_config(config.mesh)
    state = run_state.restore_for_eval(config, path, mesh)  # eval.weights: ema or raw
    eval_fn = objective.make_eval_fn(config, mesh, run_state.state_sharding(config, state, mesh))
    batches = pipeline.eval_dataset(config.input, split, config.eval.batch_size)
    summary, _ = objective.evaluate(eval_fn, state, batches)
    result = {"step": int(state.step), "split": split, **summary}
    if challenge:
        result["isbi2012"] = challenge_metrics(config, state, split)
    return result


def is_isbi2012(config: ml_collections.ConfigDict) -> bool:
    """Whether the challenge scores apply: ``config.eval.isbi_challenge`` (2 classes,
    membrane = 0 and cell = 1). For one release the old rule still turns them on, with a
    deprecation line: ``eval.classes == "isbi2012"`` or the prepared ``isbi2012``."""
    chosen = config.eval.get("isbi_challenge", False)
    if not chosen:
        old = config.model.num_classes == 2 and (
            config.eval.classes == "isbi2012"
            or (config.input.source == "tfds" and config.input.tfds_name == "isbi2012"))
        if old:
            errors.deprecated("turning the ISBI 2012 challenge scores on by "
                              "config.eval.classes or the dataset's name",
                              "set config.eval.isbi_challenge=True", "fcnjax.evaluate")
        return old
    if config.model.num_classes != 2:
        raise errors.ConfigError(f"config.eval.isbi_challenge scores 2 classes (membrane 0, "
                                 f"cell 1), not config.model.num_classes = "
                                 f"{config.model.num_classes}")
    return bool(chosen)


def challenge_metrics(config: ml_collections.ConfigDict, state: Any, split: str
                      ) -> dict[str, float]:
    """The ISBI 2012 challenge's scores of ``split``'s whole images:
    ``{"v_rand", "v_info", "rand_error", "pixel_error", "images"}``.

    Each image, normalised as the input pipeline does (no mirror padding, no canvas), goes
    through :func:`fcnjax.inference.make_forward` (a valid U-Net tile by tile); p(membrane) is
    the softmax's class 0, the true cells are the pixels of class 1 (void counts as
    membrane). Scored by :func:`fcnjax.isbi_metrics.challenge_scores`.
    """
    from fcnjax import isbi_metrics
    from fcnjax.data import pipeline, transforms

    cfg = config.input
    source = pipeline.make_source(cfg, split, "eval_ids" if split == cfg.eval_split else None)
    table = transforms.label_table(pipeline.label_values(cfg, source))
    forward = inference.make_forward(config, state)
    membranes, cells = [], []
    for index in range(len(source)):
        example = transforms.map_labels(source[index], table)
        image = transforms.normalize(example, cfg.mean, cfg.scale, cfg.bgr)["image"]
        membranes.append(inference.softmax(forward(image))[..., 0])
        cells.append(example["label"] == 1)
    return {**isbi_metrics.challenge_scores(membranes, cells), "images": len(membranes)}


def report(config: ml_collections.ConfigDict, result: dict[str, Any],
           names: list[str] | None = None) -> str:
    """The printed report: a heading line, the paper's table, per-class IoU and Dice.
    names: the classes' names by id (default: ``config.eval.classes``' class set)."""
    names = names or class_names(config.eval.classes, config.model.num_classes)
    heading = (f"{config.model.name}, step {result['step']}, split {result['split']}: "
               f"loss {result['loss']:.4g}")
    text = heading + "\n" + reporting.paper_table(result, names)
    if "isbi2012" in result:
        scores = result["isbi2012"]
        text += (f"\n\nISBI 2012 challenge, {scores['images']} images, best of 11 thresholds:"
                 f"\n  V_Rand (thinned) {scores['v_rand']:.4f}   V_Info (thinned) "
                 f"{scores['v_info']:.4f}   2016 leaderboard, 1 best"
                 f"\n  Rand error       {scores['rand_error']:.4f}   pixel error      "
                 f"{scores['pixel_error']:.4f}   2012 leaderboard (U-Net paper), 0 best")
    return text


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--config``, ``--checkpoint``, ``--split``."""
    from absl import flags, logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "the training config file",
                                             lock_config=True)
    path = flags.DEFINE_string("checkpoint", None, "workdir, its checkpoints/ or best/ "
                               "folder, or one <step> folder")
    split = flags.DEFINE_string("split", None, "split to score (default: eval_split)")
    flags.mark_flags_as_required(["config"])

    def run(args: list[str]) -> None:
        if len(args) > 1:
            raise errors.ConfigError(f"unexpected arguments: {args[1:]}")
        if not path.value:
            raise errors.ConfigError("give --checkpoint (a workdir or checkpoint folder)")
        inference.check_eval(config.value)  # before anything restores or compiles
        parallel.initialize(auto=config.value.mesh.cluster_detect)  # multi-host; else no-op
        compile_cache.enable(config.value.get("compile_cache", compile_cache.AUTO))
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        where = path.value
        challenge = is_isbi2012(config.value) and jax.process_count() == 1
        result = evaluate_checkpoint(config.value, where, split.value, challenge)
        if not parallel.is_main_process():
            return
        from fcnjax.data import pipeline  # grain and tfds: only to score

        names = pipeline.class_names(config.value)  # a prepared dataset's own names
        print(report(config.value, result, names))
        root = os.path.dirname(checkpoint.locate(where)[0])
        out = os.path.join(root, f"eval_{result['split']}_{result['step']}.json")
        try:
            with open(out, "w") as f:
                json.dump(reporting.clean(result), f, indent=1)
            print(f"wrote {out}")
        except OSError as e:
            print(f"could not write {out}: {e.strerror or e}")
        try:
            for picture in reporting.write_class_pictures(os.path.splitext(out)[0], result,
                                                          names):
                print(f"wrote {picture}")
        except OSError as e:
            print(f"could not write the pictures beside {out}: {e.strerror or e}")

    errors.run_app("fcnjax.evaluate", run, argv, config, renamed={"--workdir": "--checkpoint"})


if __name__ == "__main__":
    main()

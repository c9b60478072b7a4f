"""Score a checkpoint on a split: the paper's table (pixel acc., mean acc., mean IU, f.w. IU)
and per-class IoU and Dice.

    python -m fcnjax.evaluate --config configs/sample.py --checkpoint /tmp/fcnjax_sample

``--checkpoint`` is a workdir (its newest checkpoint), its ``checkpoints/`` or ``best/``
folder (``best`` holds the best evaluation by mean IU), or one ``<step>`` folder in them;
``--workdir DIR`` is the same as ``--checkpoint DIR``. ``--split`` defaults to
``config.input.eval_split``. Prints the table and writes it as JSON to
``<workdir>/eval_<split>_<step>.json``. A checkpoint of another model is refused with a
message naming the arrays that do not fit.

Scoring is data parallel over ``config.mesh``, as training is (:mod:`fcnjax.parallel`): each
eval batch is padded with void examples to a multiple of the devices and split over them. A
checkpoint restores on any number of devices, whatever it was written on. Multi-host: run the
same command in every process (``JAX_COORDINATOR_ADDRESS`` ...); process 0 prints and writes.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
from jax.sharding import Mesh

from fcnjax import checkpoint, errors, models, parallel, reporting, train, visualize


def restore_state(config: ml_collections.ConfigDict, path: str, mesh: Mesh | None = None
                  ) -> Any:
    """The train state of ``config``'s model restored from the checkpoint ``path`` names
    (see ``checkpoint.locate``); FileNotFoundError or checkpoint.CheckpointMismatch.

    mesh: place the state on it as ``config.mesh`` says (``train.state_sharding``); None:
    on the default device.
    """
    model = models.build(config.model)
    image_shape = train.input_shape(config)
    key = jax.random.key(config.seed, impl=config.prng_impl)
    state = train.create_train_state(config, model, key, image_shape, pretrained=False)
    if mesh is not None:
        state = parallel.shard_state(state, train.state_sharding(config, state, mesh))
    return checkpoint.restore_path(path, state)  # onto the template's placement


def evaluate_checkpoint(config: ml_collections.ConfigDict, path: str,
                        split: str | None = None) -> dict[str, Any]:
    """Score the checkpoint ``path`` names on ``split`` (default: the eval split).

    Returns ``{"step", "split", "loss", "pixel_acc", "mean_acc", "mean_iu", "fw_iu",
    "mean_dice", "class_iu", "class_dice"}``.
    """
    from fcnjax.data import pipeline

    split = split or config.input.eval_split
    mesh = parallel.mesh_from_config(config.mesh)
    state = restore_state(config, path, mesh)
    eval_fn = train.make_eval_fn(config, mesh, train.state_sharding(config, state, mesh))
    batches = pipeline.eval_dataset(config.input, split, config.eval.batch_size)
    summary, _ = train.evaluate(eval_fn, state, batches)
    return {"step": int(state.step), "split": split, **summary}


def report(config: ml_collections.ConfigDict, result: dict[str, Any]) -> str:
    """The printed report: a heading line, the paper's table, per-class IoU and Dice."""
    names = visualize.class_names(config.eval.classes, config.model.num_classes)
    heading = (f"{config.model.name}, step {result['step']}, split {result['split']}: "
               f"loss {result['loss']:.4g}")
    return heading + "\n" + reporting.paper_table(result, names)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--config``, ``--checkpoint`` (or ``--workdir``), ``--split``."""
    from absl import flags, logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "the training config file",
                                             lock_config=True)
    path = flags.DEFINE_string("checkpoint", None, "workdir, its checkpoints/ or best/ "
                               "folder, or one <step> folder")
    workdir = flags.DEFINE_string("workdir", None, "same as --checkpoint DIR")
    split = flags.DEFINE_string("split", None, "split to score (default: eval_split)")
    flags.mark_flags_as_required(["config"])

    def run(args: list[str]) -> None:
        if len(args) > 1:
            raise errors.ConfigError(f"unexpected arguments: {args[1:]}")
        if not (path.value or workdir.value):
            raise errors.ConfigError("give --checkpoint (a workdir or checkpoint folder)")
        parallel.initialize(auto=config.value.mesh.cluster_detect)  # multi-host; else no-op
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        where = path.value or workdir.value
        result = evaluate_checkpoint(config.value, where, split.value)
        if not parallel.is_main_process():
            return
        print(report(config.value, result))
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
                                                          config.value.eval.classes):
                print(f"wrote {picture}")
        except OSError as e:
            print(f"could not write the pictures beside {out}: {e.strerror or e}")

    errors.run_app("fcnjax.evaluate", run, argv, config)


if __name__ == "__main__":
    main()

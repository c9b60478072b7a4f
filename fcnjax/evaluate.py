"""Score the newest checkpoint of a workdir on a split: the paper's four metrics as JSON.

    python -m fcnjax.evaluate --config configs/sample.py --workdir /tmp/fcnjax_sample

Writes ``<workdir>/eval_<split>_<step>.json`` and prints it; ``--split`` defaults to
``config.input.eval_split``.
"""

from __future__ import annotations

import functools
import json
import os

import jax
import ml_collections

from fcnjax import checkpoint, models, train
from fcnjax.data import pipeline


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        split: str | None = None) -> dict:
    """Restore the newest checkpoint in ``workdir`` and score it on ``split``.

    Returns ``{"step", "split", "pixel_loss", "pixel_accuracy", "mean_accuracy", "mean_iu",
    "frequency_weighted_iu"}``; raises FileNotFoundError when there is no checkpoint.
    """
    split = split or config.input.eval_split
    if checkpoint.latest_step(workdir) is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint.checkpoint_dir(workdir)}")
    model = models.build(config.model)
    image_shape = (1, *config.input.crop_size, train.CHANNELS[config.input.image_mode])
    key = jax.random.key(config.seed, impl=config.prng_impl)
    state = train.create_train_state(config, model, key, image_shape, pretrained=False)
    with checkpoint.make_manager(workdir, create=False) as manager:
        state = checkpoint.restore_latest(manager, state)
    eval_fn = jax.jit(functools.partial(train.eval_step, ignore_label=config.loss.ignore_label))
    batches = pipeline.eval_dataset(config.input, split, config.eval.batch_size)
    summary, _ = train.evaluate(eval_fn, state, batches)
    return {"step": int(state.step), "split": split, **summary}


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--config``, ``--workdir`` and optionally ``--split``."""
    from absl import app, flags, logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "the training config file",
                                             lock_config=True)
    workdir = flags.DEFINE_string("workdir", None, "workdir holding checkpoints/")
    split = flags.DEFINE_string("split", None, "split to score (default: eval_split)")
    flags.mark_flags_as_required(["config", "workdir"])

    def run(args: list[str]) -> None:
        if len(args) > 1:
            raise app.UsageError(f"unexpected arguments: {args[1:]}")
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        result = evaluate_checkpoint(config.value, workdir.value, split.value)
        path = os.path.join(workdir.value, f"eval_{result['split']}_{result['step']}.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        print(train.format_scores(result))
        print(f"wrote {path}")

    app.run(run, argv=argv)


if __name__ == "__main__":
    main()

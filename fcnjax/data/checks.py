"""What a training run checks of its data before anything compiles or is written.

:func:`check_data` opens the training and eval splits as the config describes them, refuses
a config that contradicts a prepared dataset's labels (:func:`pipeline.label_values`,
:func:`pipeline.check_num_classes`), surveys a bounded sample of the training labels
(:mod:`fcnjax.data.survey`: seconds, however large the split) and stops on degenerate
data: one class only, mostly void, a class that never appears, stored values the label
mapping drops. It returns the one line of sampled class fractions that ``fcnjax.train``
prints at start-up. ``config.input.check_data = False`` skips the survey (not the label
checks), for a user who means to train on such data.
"""

from __future__ import annotations

from typing import Any

from fcnjax.data import pipeline, survey
from fcnjax.run.errors import ConfigError


def check_canvas(config: Any, result: survey.Survey) -> None:
    """ConfigError when surveyed eval images (with ``mirror_pad`` on each side) exceed the
    ``eval_size`` canvas: found at start-up, not at the first evaluation."""
    size, pad = tuple(config.input.eval_size), 2 * config.input.mirror_pad
    needed = (result.height[1] + pad, result.width[1] + pad)
    if needed[0] > size[0] or needed[1] > size[1]:
        raise ConfigError(
            f"{result.split} images reach {result.height[1]}x{result.width[1]} pixels "
            f"({needed[0]}x{needed[1]} with mirror_pad) but config.input.eval_size = {size}: "
            f"set --config.input.eval_size='({max(needed[0], size[0])},"
            f"{max(needed[1], size[1])})', or '()' to score whole images at their own sizes")


def check_data(config: Any, max_examples: int = 64, max_seconds: float = 10.0) -> str | None:
    """Check the data of ``config`` (see the module docstring); return the training labels'
    class-fraction line, or None when ``config.input.check_data`` is off.

    Raises ConfigError (a config that contradicts the data) or survey.DegenerateData.
    """
    cfg, num_classes = config.input, config.model.num_classes
    sources = {}
    for split, ids_key in ((cfg.train_split, "train_ids"), (cfg.eval_split, "eval_ids")):
        source = pipeline.make_source(cfg, split, ids_key)
        pipeline.check_num_classes(source, num_classes)
        sources[split, ids_key] = (source, pipeline.label_values(cfg, source))
    if not cfg.get("check_data", True):
        return None
    source, values = sources[cfg.train_split, "train_ids"]
    names = pipeline.class_names(config, source)
    result = survey.survey(source, num_classes, values, max_examples=max_examples,
                           max_seconds=max_seconds, split=cfg.train_split)
    line = survey.fractions_line(result, names)
    found = survey.problems(result, names)
    if found:
        raise survey.DegenerateData(f"{found[0]} ({line}; config.input.check_data=False "
                                    "trains anyway)")
    if cfg.eval_size:  # whole images at their own sizes need no canvas: nothing to read
        eval_source, _ = sources[cfg.eval_split, "eval_ids"]
        check_canvas(config, survey.survey(eval_source, 0, (), max_examples=max_examples,
                                           max_seconds=max_seconds, split=cfg.eval_split))
    return line


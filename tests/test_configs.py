"""Every config in configs/ loads, locks, overrides only default fields and builds its model."""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

from configs import default
from fcnjax import models
from fcnjax.data.classes import CLASS_SETS
from fcnjax.run.state import CHANNELS

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).parent.parent / "configs").glob("*.py")
                 if p.stem != "__init__")


def leaves(config, prefix=""):
    """Dotted names of every field, model fields excluded (they differ between models)."""
    names = set()
    for key, value in config.items():
        if key == "model":
            continue
        if hasattr(value, "items"):
            names |= leaves(value, f"{prefix}{key}.")
        else:
            names.add(prefix + key)
    return names


def load(name):
    return importlib.import_module(f"configs.{name}").get_config()


def test_the_paper_configs_are_all_present():
    assert {"default", "sample", "fcn32s", "fcn32s_fixed", "fcn16s", "fcn8s", "fcn8s_atonce",
            "fcn_alexnet", "fcn_googlenet", "nyud_rgbd", "nyud_rgbhha", "siftflow_fcn16s",
            "camvid_fcn8s", "camvid_fcn8s_modern", "unet_isbi"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_sets_exactly_the_default_fields(name):
    config = load(name)
    assert leaves(config) == leaves(default.get_config())
    config.lock()
    with pytest.raises(AttributeError):
        config.train.stpes = 1


@pytest.mark.parametrize("name", CONFIGS)
def test_config_docstring_opens_with_the_run_command(name):
    doc = importlib.import_module(f"configs.{name}").__doc__
    assert f"python -m fcnjax.train --config configs/{name}.py" in doc


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_its_model_and_outputs_class_scores(name):
    config = load(name)
    model = models.build(config.model)
    shape = (1, *config.input.crop_size, CHANNELS[config.input.image_mode])
    image = jax.ShapeDtypeStruct(shape, jnp.float32)
    if config.model.name == "nyud_late_fusion":  # two inputs: colour and HHA
        image = {stream: image for stream in config.model.streams}
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), image)
    outputs = jax.eval_shape(lambda v, x: model.apply(v, x), variables, image)
    if config.model.name == "siftflow_fcn16s":  # two heads: 33 semantic, 3 geometric classes
        classes = {"sem": 33, "geo": 3}
    else:
        outputs, classes = {"": outputs}, {"": config.model.num_classes}
    for head, logits in outputs.items():
        assert logits.dtype == jnp.float32
        assert logits.shape[-1] == classes[head]
        assert logits.shape[1] <= shape[1] and logits.shape[2] <= shape[2]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_names_a_known_class_set_and_consistent_loss(name):
    config = load(name)
    assert config.eval.classes in CLASS_SETS
    if config.loss.class_weights:
        assert len(config.loss.class_weights) == config.model.num_classes


def test_camvid_median_frequency_weights_fit_its_classes():
    from configs import camvid_fcn8s
    config = camvid_fcn8s.get_config()
    config.loss.class_weights = camvid_fcn8s.MEDIAN_FREQUENCY
    assert len(config.loss.class_weights) == config.model.num_classes == 11
    assert len(CLASS_SETS["camvid"]) == 11

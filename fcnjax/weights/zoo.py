"""The FCN reference's published caffemodels: one table, and loaders into fcnjax (the
command line is :mod:`fcnjax.zoo`).

    python -m fcnjax.zoo list
    python -m fcnjax.zoo convert fcn8s-heavy-pascal.caffemodel --model voc-fcn8s --output /tmp/fcn8s
    python -m fcnjax.evaluate --config configs/fcn8s.py --checkpoint /tmp/fcn8s ...

Nothing is downloaded: each row gives the file's name and the address the reference
publishes it at (its folder's ``caffemodel-url``); fetch the file yourself. ``convert`` writes
a full train state of the row's config at step 0 into ``OUT/checkpoints/0`` (and the config
into ``OUT/config.json``), which ``fcnjax.evaluate --checkpoint OUT``, ``fcnjax.predict`` and
``config.init.checkpoint=OUT`` read; :func:`load` returns the params without writing anything.

Scores are the reference's: the VOC rows from its README (mean IU on seg11valid, the
VOC2011 val images outside SBD train), NYUDv2 and SIFT Flow from the CVPR 2015 paper's
Tables 4 and 5 (the published "heavy" models were trained for the PAMI 2016 version, which
may report more); PASCAL-Context's are left to PAMI 2016's Table 6, not checked here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from collections.abc import Mapping
from typing import Any

from fcnjax import models
from fcnjax.run.errors import ConfigError
from fcnjax.weights import caffe

DOWNLOADS = "http://dl.caffe.berkeleyvision.org/"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One published net.

    name: the reference's folder name (``voc-fcn8s``). model: the ``fcnjax.models.MODELS``
    name; model_kwargs: what its config sets besides (num_classes, skips, streams).
    config: the config file under ``configs/`` whose train state ``convert`` writes.
    classes: score channels, background included. url: "" where nothing was published.
    in_channels: of the image (4: BGR + depth). renames / streams: see
    :func:`fcnjax.weights.caffe.caffe_keys`. trunk_only: an ImageNet classifier, whose
    conv layers become an FCN's trunk (the score layers start at zero).
    """

    name: str
    model: str
    config: str
    classes: int
    file: str
    url: str
    score: str
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    in_channels: int = 3
    renames: Mapping[str, str] = dataclasses.field(default_factory=dict)
    streams: Mapping[str, str] = dataclasses.field(default_factory=dict)
    trunk_only: bool = False

    def build(self) -> Any:
        """The fcnjax model this file's weights fit."""
        kwargs = {} if self.trunk_only else {"num_classes": self.classes}
        return models.MODELS[self.model](**kwargs, **self.model_kwargs)


def _published(folder_file: str) -> str:
    return DOWNLOADS + folder_file


SIFT_SKIPS = {"32s": (), "16s": ("pool4",), "8s": ("pool4", "pool3")}

TABLE: tuple[Entry, ...] = (
    Entry("voc-fcn32s", "fcn32s", "fcn32s.py", 21, "fcn32s-heavy-pascal.caffemodel",
          _published("fcn32s-heavy-pascal.caffemodel"), "63.6 mean IU, VOC2011 seg11valid"),
    Entry("voc-fcn16s", "fcn16s", "fcn16s.py", 21, "fcn16s-heavy-pascal.caffemodel",
          _published("fcn16s-heavy-pascal.caffemodel"), "65.0 mean IU, VOC2011 seg11valid"),
    Entry("voc-fcn8s", "fcn8s", "fcn8s.py", 21, "fcn8s-heavy-pascal.caffemodel",
          _published("fcn8s-heavy-pascal.caffemodel"),
          "65.5 mean IU, VOC2011 seg11valid; 67.2 VOC2012 test"),
    Entry("voc-fcn8s-atonce", "fcn8s_atonce", "fcn8s_atonce.py", 21,
          "fcn8s-atonce-pascal.caffemodel", _published("fcn8s-atonce-pascal.caffemodel"),
          "65.4 mean IU, VOC2011 seg11valid"),
    Entry("voc-fcn-alexnet", "fcn_alexnet", "fcn_alexnet.py", 21,
          "fcn-alexnet-pascal.caffemodel", _published("fcn-alexnet-pascal.caffemodel"),
          "48.0 mean IU, VOC2011 seg11valid"),
    Entry("nyud-fcn32s-color", "fcn32s", "nyud_color.py", 40,
          "nyud-fcn32s-color-heavy.caffemodel", _published("nyud-fcn32s-color-heavy.caffemodel"),
          "29.2 mean IU, NYUDv2 test (CVPR Table 4)"),
    Entry("nyud-fcn32s-hha", "fcn32s", "nyud_hha.py", 40, "nyud-fcn32s-hha-heavy.caffemodel",
          _published("nyud-fcn32s-hha-heavy.caffemodel"),
          "24.2 mean IU, NYUDv2 test (CVPR Table 4)"),
    Entry("nyud-fcn32s-color-d", "nyud_early_fusion", "nyud_rgbd.py", 40,
          "", "",
          "30.5 mean IU, NYUDv2 test (CVPR Table 4); no caffemodel published",
          in_channels=4, renames={"conv1_1": "conv1_1_bgrd"}),
    Entry("nyud-fcn32s-color-hha", "nyud_late_fusion", "nyud_rgbhha.py", 40,
          "nyud-fcn32s-color-hha-heavy.caffemodel",
          _published("nyud-fcn32s-color-hha-heavy.caffemodel"),
          "32.8 mean IU, NYUDv2 test (CVPR Table 4)",
          model_kwargs={"streams": ("image", "hha")},
          streams={"image": "color", "hha": "hha"}),
    *(Entry(f"siftflow-fcn{s}", "siftflow_fcn16s", f"siftflow_fcn{s}.py", 33,
            f"siftflow-fcn{s}-heavy.caffemodel", _published(f"siftflow-fcn{s}-heavy.caffemodel"),
            ("39.5 mean IU, 94.3 geometric acc., SIFT Flow test (CVPR Table 5)" if s == "16s"
             else "not reported"),
            model_kwargs={} if s == "16s" else {"skips": skips})
      for s, skips in SIFT_SKIPS.items()),
    *(Entry(f"pascalcontext-fcn{s}", f"fcn{s}", f"pascalcontext_fcn{s}.py", 60,
            f"pascalcontext-fcn{s}-heavy.caffemodel",
            _published(f"pascalcontext-fcn{s}-heavy.caffemodel"),
            "PAMI 2016 Table 6 (59 classes); not checked in this repository")
      for s in ("32s", "16s", "8s")),
    Entry("vgg16-ilsvrc", "fcn32s", "fcn32s.py", 1000, "VGG_ILSVRC_16_layers.caffemodel",
          "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"
          "VGG_ILSVRC_16_layers.caffemodel",
          "ImageNet classifier: the trunk FCN-32s and at-once FCN-8s start from",
          trunk_only=True),
)
"""Every net the reference publishes, and the ImageNet VGG16 its FCNs start from."""

ENTRIES: Mapping[str, Entry] = {entry.name: entry for entry in TABLE}


def entry(name: str) -> Entry:
    """The row called ``name``; ConfigError naming the choices otherwise."""
    if name not in ENTRIES:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(ENTRIES)} "
                          "(python -m fcnjax.zoo list)")
    return ENTRIES[name]


def load(path: str | os.PathLike, name: str, model: Any = None) -> dict:
    """The params of the caffemodel ``path`` for the row ``name``, as a numpy tree.

    model: the fcnjax model to load into (default: the row's, ``entry(name).build()``; pass
    one to load into a variant, e.g. ``learnable_upsampling=True``). The ImageNet VGG16
    gives ``{"trunk": ...}``, for :func:`fcnjax.weights.surgery.stage_init`.
    Raises DataError for an unreadable file or one of another net (naming the missing,
    extra and misshapen layers).
    """
    row = entry(name)
    if row.trunk_only:
        return {"trunk": caffe.from_caffe_vgg16(path)}
    return caffe.from_caffe_fcn(path, model if model is not None else row.build(),
                                in_channels=row.in_channels, renames=row.renames,
                                streams=row.streams, what=row.name)


def configs_dir() -> str:
    """The repository's ``configs/`` folder (beside the fcnjax package)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "configs")


def load_config(path: str) -> Any:
    """``get_config()`` of a config file, as ``--config FILE`` reads it."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist: pass --config FILE")
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    sys.path.insert(0, root)  # configs import "from configs import default"
    try:
        spec = importlib.util.spec_from_file_location("_fcnjax_zoo_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_config()
    finally:
        sys.path.remove(root)


def check_config(config: Any, row: Entry) -> None:
    """The config must build the row's model (the checkpoint is that model's)."""
    want = {"name": row.model, **({} if row.trunk_only else {"num_classes": row.classes}),
            **row.model_kwargs}
    have = dict(config.model)
    differ = [f"model.{k}={have.get(k, '(unset)')!r}" for k, v in want.items()
              if _plain(have.get(k)) != _plain(v)]
    if differ:
        raise ConfigError(f"the config does not build {row.name}'s model ({want}): it sets "
                          f"{', '.join(differ)}; pass the row's config ({row.config})")


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def convert(path: str | os.PathLike, name: str, out: str, config: Any = None) -> str:
    """Write the caffemodel ``path`` (row ``name``) as checkpoint step 0 of ``out``.

    config: the ConfigDict whose train state is written (default: the row's config file);
    evaluate and predict must be given the same config. Returns the step folder.
    """
    import jax
    import jax.numpy as jnp

    from fcnjax.run import checkpoint, workdir
    from fcnjax.run import state as run_state
    from fcnjax.weights import surgery

    row = entry(name)
    if config is None:
        config = load_config(os.path.join(configs_dir(), row.config))
    check_config(config, row)
    model = models.build(config.model)
    params = load(path, name, model)
    key = jax.random.key(config.seed, impl=config.prng_impl)
    image_shape = run_state.input_shape(config)
    if row.trunk_only:
        sample = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, jnp.float32), image_shape,
                              is_leaf=lambda x: isinstance(x, tuple))
        params, _ = surgery.stage_init(model, params, key, sample)
    state = run_state.create_train_state(config, model, key, image_shape, pretrained=False)
    surgery.check_matches(state.params, params, f"params of {os.fspath(path)}")
    state = state.replace(params=jax.tree.map(jnp.asarray, params))
    os.makedirs(out, exist_ok=True)
    workdir.save_config(out, config)
    with checkpoint.make_manager(out) as manager:
        checkpoint.save(manager, 0, state)
        checkpoint.wait(manager)
    return os.path.join(checkpoint.checkpoint_dir(out), "0")

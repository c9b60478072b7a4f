"""Write a trained model as one ``jax.export`` artifact: uint8 images in, class scores out.

    python -m fcnjax.export --config configs/sample.py --checkpoint /tmp/fcnjax_sample \
        --output /tmp/fcnjax_sample.jax --head argmax

The artifact is the whole prediction of one image batch: the config's preprocessing
(``config.input``: ``bgr``, ``mean``, ``scale``, by :func:`fcnjax.data.transforms.normalize`,
as ``predict`` reads an image), the network with its weights inside as constants, and the
``--head``: ``logits`` (float32 (B, H, W, K)), ``softmax`` (float32 probabilities) or
``argmax`` (int32 (B, H, W) class ids). It is lowered for the CPU and CUDA at once, so a
model exported on a laptop runs on a GPU server, and loads with JAX alone (no fcnjax, no
Flax): ``jax.export.deserialize(data).call(images)``.

Input: uint8 (B, H, W, C), C = 1 for ``image_mode`` "L", 3 for "RGB", as read from an
image file. Batch, height and width are symbolic for FCNs and "same"-padding U-Nets (one
artifact for every size); ``--size`` fixes height and width. A "valid"-padding U-Net takes
only some sizes and returns the centre of its input (H' = ``output_size(H)``): it needs
``--size``, and a size it cannot take is refused naming the nearest ones it can. The
artifact runs the network once on the whole input: ``predict``'s overlap tiling, sliding
windows and test-time augmentation loop on the host and are not inside.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
from jax import export

from fcnjax import inference, models
from fcnjax.data import transforms
from fcnjax.models.norm import state_variables
from fcnjax.models.unet import UNetGeometry
from fcnjax.run import errors, state

HEADS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "logits": lambda scores: scores,
    "softmax": lambda scores: jax.nn.softmax(scores, axis=-1),
    "argmax": lambda scores: jnp.argmax(scores, axis=-1).astype(jnp.int32),
}
"""What the artifact returns from the float32 (B, H, W, K) logits."""

PLATFORMS = ("cpu", "cuda")
"""Backends the artifact is lowered for (lowering for CUDA needs no GPU)."""


def check_export(config: ml_collections.ConfigDict, head: str = "logits",
                 size: tuple[int, int] | None = None) -> None:
    """ConfigError (one line), before any checkpoint is read, for an export that cannot
    work: an unknown head, a model not fed by one image, a size the model cannot take."""
    if head not in HEADS:
        raise errors.ConfigError(f"--head={head}: choose one of {', '.join(HEADS)}")
    check_exportable(config)
    check_size(config, size)


def check_exportable(config: ml_collections.ConfigDict) -> None:
    """ConfigError (one line) for a model that cannot be built (an unknown name, a bad
    field) or that the artifact cannot feed: one uint8 image in."""
    models.build(config.model)
    cfg = config.input
    if config.model.name == "nyud_late_fusion" or tuple(cfg.extra_inputs):
        raise errors.ConfigError(f"{config.model.name} takes several inputs (extra_inputs "
                                 f"{tuple(cfg.extra_inputs)}); an export takes one image")
    if cfg.depth_key:
        raise errors.ConfigError(f"config.input.depth_key = {cfg.depth_key!r}: an export "
                                 "takes one image file's pixels, without a depth channel")
    if cfg.image_mode not in state.CHANNELS:
        raise errors.ConfigError(f"config.input.image_mode = {cfg.image_mode!r}: choose one "
                                 f"of {sorted(state.CHANNELS)}")


def valid_unet(config: ml_collections.ConfigDict) -> bool:
    """Whether the model is a "valid"-padding U-Net (only some input sizes fit)."""
    return config.model.name == "unet" and config.model.get("padding") == "valid"


def admissible_sizes(geometry: UNetGeometry, near: int, count: int = 4) -> list[int]:
    """Input sides the U-Net takes, the first ``count`` from ``near`` upwards."""
    sizes, n = [], max(near, 1)
    while len(sizes) < count:
        try:
            geometry.output_size(n)
            sizes.append(n)
        except ValueError:
            pass
        n += 1
    return sizes


def check_size(config: ml_collections.ConfigDict, size: tuple[int, int] | None) -> None:
    """ConfigError unless ``size`` (``--size``) suits the model: a valid U-Net needs one,
    each side a size it takes; the message names sizes it takes."""
    if not valid_unet(config):
        return
    geometry = inference.model_geometry(config)
    if size is None:
        near = config.input.crop_size[0]
        raise errors.ConfigError(
            "a valid-padding U-Net takes only some input sizes (e.g. "
            f"{', '.join(map(str, admissible_sizes(geometry, near)))}): give "
            f"--size, e.g. --size={admissible_sizes(geometry, near, 1)[0]}")
    for n in size:
        try:
            geometry.output_size(n)
        except ValueError as error:
            raise errors.ConfigError(f"--size={size[0]}x{size[1]}: {error}") from None


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"572"`` -> (572, 572), ``"384x512"`` -> (384, 512), None -> None (symbolic)."""
    if not text:
        return None
    parts = text.lower().split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise errors.ConfigError(f"--size={text}: give HEIGHTxWIDTH or one side in pixels, "
                                 "e.g. --size=500x500 or --size=572")
    return int(parts[0]), int(parts[1])


def input_spec(config: ml_collections.ConfigDict, size: tuple[int, int] | None = None
               ) -> jax.ShapeDtypeStruct:
    """uint8 (b, h, w, C): batch symbolic, height and width symbolic or ``size``."""
    channels = state.CHANNELS[config.input.image_mode]
    if size is None:
        return jax.ShapeDtypeStruct((*export.symbolic_shape("b, h, w"), channels), jnp.uint8)
    (batch,) = export.symbolic_shape("b")
    return jax.ShapeDtypeStruct((batch, *size, channels), jnp.uint8)


def prediction(config: ml_collections.ConfigDict, apply_fn: Callable[..., Any],
               variables: Any, head: str = "logits") -> Callable[[jax.Array], jax.Array]:
    """uint8 (B, H, W, C) images -> the ``head`` of the model's scores, its ``variables``
    (``{"params": ...}``, with ``"batch_stats"`` for BatchNorm: the running statistics)
    closed over.

    The images are normalised by :func:`fcnjax.data.transforms.normalize` with
    ``config.input``'s ``mean``, ``scale`` and ``bgr``, as ``predict`` normalises a file.
    """
    cfg = config.input

    def predict(pixels: jax.Array) -> jax.Array:
        image = transforms.normalize({"image": pixels}, cfg.mean, cfg.scale, cfg.bgr)["image"]
        scores = inference.main_scores(apply_fn(variables, image, train=False))
        return HEADS[head](scores)

    return predict


def export_prediction(config: ml_collections.ConfigDict, apply_fn: Callable[..., Any],
                      variables: Any, head: str = "logits", size: tuple[int, int] | None = None,
                      platforms: Sequence[str] = PLATFORMS) -> export.Exported:
    """The :func:`prediction` of ``variables`` traced for :func:`input_spec` and lowered for
    ``platforms``."""
    check_export(config, head, size)
    fn = jax.jit(prediction(config, apply_fn, variables, head))
    return export.export(fn, platforms=tuple(platforms))(input_spec(config, size))


def write(exported: export.Exported, path: str) -> int:
    """Serialise ``exported`` to ``path``; its size in bytes."""
    data = exported.serialize()
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def export_checkpoint(config: ml_collections.ConfigDict, checkpoint_path: str, output: str,
                      head: str = "logits", size: tuple[int, int] | None = None) -> str:
    """Restore the checkpoint, export its prediction to ``output``; a one-line summary."""
    check_export(config, head, size)
    restored = state.restore_for_eval(config, checkpoint_path)  # eval.weights
    exported = export_prediction(config, restored.apply_fn, state_variables(restored), head,
                                 size)
    nbytes = write(exported, output)
    return (f"wrote {output} ({nbytes / 1e6:.2f} MB, weights inside; "
            f"{', '.join(exported.platforms)}): {exported.in_avals[0].str_short()} -> "
            f"{exported.out_avals[0].str_short()}")


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--config``, ``--checkpoint``, ``--output``, ``--head``, ``--size``."""
    from absl import flags, logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "the training config file",
                                             lock_config=True)
    path = flags.DEFINE_string("checkpoint", None, "workdir, its checkpoints/ or best/ "
                               "folder, or one <step> folder")
    output = flags.DEFINE_string("output", None, "the artifact file to write")
    head = flags.DEFINE_enum("head", "logits", list(HEADS), "what the artifact returns: "
                             "logits, softmax probabilities or argmax class ids")
    size = flags.DEFINE_string("size", None, "fixed input HEIGHTxWIDTH (or one side); "
                               "default: symbolic, any size (a valid U-Net needs one)")
    flags.mark_flags_as_required(["config", "checkpoint", "output"])

    def run(args: list[str]) -> None:
        if len(args) > 1:
            raise errors.ConfigError(f"unexpected arguments {args[1:]}: export takes flags only")
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        folder = os.path.dirname(os.path.abspath(output.value))
        if not os.path.isdir(folder):
            raise errors.ConfigError(f"--output={output.value}: folder {folder} does not exist")
        print(export_checkpoint(config.value, path.value, output.value, head.value,
                                parse_size(size.value)))

    errors.run_app("fcnjax.export", run, argv, config)


if __name__ == "__main__":
    main()

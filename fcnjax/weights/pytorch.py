"""PyTorch weight files, read safely: ``torch.load(weights_only=True)`` and nothing else.

A file that would need to run code to load is refused (:class:`WeightFileError`), never
unpickled. torch is imported only when a file is read.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Mapping, Union

import numpy as np

from fcnjax.weights.layouts import WeightFileError

StateDict = Mapping[str, np.ndarray]
Weights = Union[StateDict, str, os.PathLike]
"""A ``.pth`` path, or a state dict already in memory (tensors or arrays)."""

STATE_DICT_KEYS = ("model_state_dict", "state_dict", "model")
"""Keys under which checkpoints wrap their state dict (pytorch-fcn uses the first)."""

def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PyTorch ``.pth`` file into ``{key: numpy array}`` (floats as float32).

    Accepts a bare state dict or a checkpoint wrapping one under a key of
    :data:`STATE_DICT_KEYS` (pytorch-fcn saves ``{"model_state_dict": ...}``). Only
    ``torch.load(weights_only=True)`` is used; a file it refuses raises
    :class:`WeightFileError`. A missing file raises ``FileNotFoundError``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no PyTorch weight file at {path!r}")
    import torch  # optional dependency: only reading .pth files needs it

    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise WeightFileError(
            f"refused to load {path!r}: it is not a plain tensor file. Loading it would "
            "execute code or rebuild objects other than tensors and containers, which "
            f"torch.load(weights_only=True) forbids ({_unpickler_reason(error)}). Load it "
            "without weights_only only if you trust its source, and re-save "
            "model.state_dict() with torch.save.") from error
    except OSError:
        raise
    except Exception as error:  # torch raises KeyError, EOFError, RuntimeError on junk
        raise WeightFileError(f"could not read {path!r} as a PyTorch weight file: "
                              f"{type(error).__name__}: {error}") from error
    return {key: _as_numpy(value) for key, value in _find_state_dict(contents, path).items()}


def _unpickler_reason(error: Exception) -> str:
    """The useful line of torch's weights_only refusal ("GLOBAL os.system was not allowed")."""
    message = str(error)
    _, _, detail = message.partition("WeightsUnpickler error:")
    reason = (detail.strip() or message).split("\n")[0]
    return reason.split(". Please")[0].strip()


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(
        isinstance(k, str) and hasattr(v, "shape") for k, v in obj.items())


def _find_state_dict(contents: Any, source: str) -> Mapping[str, Any]:
    """The state dict itself, or the one a checkpoint wraps."""
    if _is_tensor_dict(contents):
        return contents
    if isinstance(contents, Mapping):
        for key in STATE_DICT_KEYS:
            if _is_tensor_dict(contents.get(key)):
                return contents[key]
        found = f"a mapping with keys {sorted(map(str, contents))[:10]}"
    else:
        found = f"a {type(contents).__name__}"
    raise WeightFileError(f"{source!r} holds {found}, not a state dict: expected a mapping "
                          f"of names to tensors, bare or under one of {STATE_DICT_KEYS}")


def _as_numpy(value: Any) -> np.ndarray:
    """A torch tensor or array-like as a numpy array; floating tensors become float32."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def read(weights: Weights) -> tuple[dict[str, np.ndarray], str]:
    """(numpy state dict, name for messages) from a path or an in-memory state dict."""
    if isinstance(weights, (str, os.PathLike)):
        return load_state_dict(weights), repr(os.fspath(weights))
    return {k: _as_numpy(v) for k, v in weights.items()}, "state dict"

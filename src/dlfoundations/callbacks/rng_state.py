"""Put the global RNG states (torch, CUDA, numpy, random) into checkpoints, so that a resumed run
draws the same dropout masks and other random numbers as an uninterrupted one."""

import random
from typing import Any, cast

import lightning as L
import numpy as np
import torch


class RNGState(L.Callback):
    """Saved in every checkpoint; restored when training resumes from one."""

    supports_replicas = True  # works on stacked replicas (dlfoundations.config.replicable)

    def state_dict(self) -> dict[str, Any]:
        np_state = cast(tuple[Any, ...], np.random.get_state())  # legacy=True (the default): a tuple
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # Plain types and tensors only, so the checkpoint loads with weights_only=True.
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        kind, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))

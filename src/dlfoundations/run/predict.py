"""Predictions of a classifier: the inputs a user gives (``predict.input``), checked, and the CSV
of predicted classes and probabilities (``eval.py predict.split=... / predict.input=...``)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from dlfoundations.atomic import atomic_write_csv
from dlfoundations.errors import UserError


def load_inputs(path: str, input_shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """The tensor of a ``.pt`` file (a tensor, or a dict with key ``x``) or a ``.npz`` file (array
    ``x``), checked to be ``[N, *input_shape]`` of finite real numbers."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"predict.input={path} is not a file")
    try:
        if file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        elif file.suffix == ".pt":
            loaded = torch.load(file, map_location="cpu", weights_only=True)
            arrays = loaded if isinstance(loaded, dict) else {"x": loaded}
        else:
            raise UserError(f"predict.input={path}: use a .pt (torch.save of a tensor) or .npz (numpy.savez) file")
    except UserError:
        raise
    except Exception as err:  # whatever a file that is no tensor file makes the loaders raise
        why = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        raise UserError(f"predict.input={path} is not a readable {file.suffix} file ({why})") from err
    x = arrays.get("x")
    if x is None:
        raise UserError(f"predict.input={path} holds {sorted(map(str, arrays))}, no x; save the inputs as x")
    try:
        x = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise UserError(f"predict.input={path} does not hold a numeric tensor ({type(x).__name__})") from err
    if x.dim() != len(input_shape) + 1 or list(x.shape[1:]) != list(input_shape) or len(x) == 0:
        raise UserError(
            f"predict.input={path} holds a tensor of shape {list(x.shape)}; the model takes "
            f"[N, {', '.join(map(str, input_shape))}] (N inputs as the data config prepares them)"
        )
    if x.is_complex() or x.dtype == torch.bool:
        raise UserError(f"predict.input={path} holds {x.dtype} values; the model takes real numbers")
    x = x.to(dtype)
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise UserError(f"predict.input={path} holds {bad} NaN/inf value(s) of {x.numel()}; give finite inputs")
    return x


class Predictor(L.LightningModule):
    """``predict_step`` of a classifier: class probabilities (softmax of the logits), and labels
    where the batch has them."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> tuple[Tensor, Tensor | None]:
        probs = torch.softmax(self.net(batch[0]).float(), dim=1)
        return probs, batch[1] if len(batch) > 1 else None


def write_predictions(trainer: L.Trainer, net: nn.Module, loader: Any, n: int, path: Path) -> Path:
    """Predict every item of ``loader`` (in order) and write index, [label,] predicted class and
    class probabilities as CSV."""
    # A list of (probs, labels or None) per batch: predict returns None only with return_predictions=False.
    batches = cast(list[tuple[Tensor, Tensor | None]], trainer.predict(Predictor(net), dataloaders=loader))
    probs = torch.cat([p for p, _ in batches]).cpu()
    if len(probs) != n:
        raise UserError(
            f"prediction covered {len(probs)} of {n} items (trainer.fast_dev_run or "
            "trainer.limit_predict_batches); set trainer.limit_predict_batches=1.0"
        )
    # Every batch has labels when the first has.
    labels = torch.cat([cast(Tensor, y) for _, y in batches]).cpu() if batches[0][1] is not None else None
    columns = ["index", *(["label"] if labels is not None else []), "predicted"]
    columns += [f"prob_{c}" for c in range(probs.shape[1])]
    return atomic_write_csv(
        path,
        (
            [i, *([int(labels[i])] if labels is not None else []), predicted, *(f"{p:.9g}" for p in row)]
            for i, (row, predicted) in enumerate(zip(probs.tolist(), probs.argmax(1).tolist()))
        ),
        columns,
    )

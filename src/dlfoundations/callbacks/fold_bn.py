"""Fold the trained model's BatchNorm at the end of fit, prove the folded model equal, save it."""

import contextlib
import copy
import logging
from pathlib import Path
from typing import cast

import lightning as L
import torch
from torch import nn

from dlfoundations.analysis import fold_batchnorm, median_seconds
from dlfoundations.atomic import atomic_write, atomic_write_json
from dlfoundations.errors import UserError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _exact_fp32():
    """TF32 off while checking: it would make the comparison measure TF32, not the folding."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old[:2]
        torch.set_float32_matmul_precision(old[2])


class FoldBatchNorm(L.Callback):
    """At the end of fit: fold BN (``fold_batchnorm``), compare folded and trained models on up to
    ``max_batches`` batches of the test (or val) data, log ``fold/*`` metrics, time both
    (median of ``timing_repeats``), save ``folded/state_dict.pt`` (loads into the model's
    ``batch_norm=false`` twin) and a ``torch.export`` program, and fail the run if the largest
    absolute difference exceeds ``atol``.

    The proof is made in float64 (``fold/max_abs_diff``: trained model and its fold, both in
    float64, where rounding cannot grow into a visible difference: about 1e-15). The float32
    models' difference (``fold/max_abs_diff_fp32``: what the saved float32 fold gives) is
    reported too; it is float32 rounding of the folded weights, 1e-6 to 1e-5 depending on the CPU."""

    def __init__(
        self, dirpath: str, atol: float = 1e-10, max_batches: int = 10, timing_repeats: int = 10, export: bool = True
    ) -> None:
        self.dirpath, self.atol, self.max_batches = Path(dirpath), atol, max_batches
        self.timing_repeats, self.export = timing_repeats, export
        self.metrics: dict[str, float] = {}

    def _batches(self, trainer: L.Trainer, device: torch.device) -> list[torch.Tensor]:
        # Lightning attaches the fit's datamodule to the trainer at run time; its stubs do not declare it.
        dm = trainer.datamodule  # type: ignore[attr-defined]
        loader = dm.test_dataloader() if dm is not None else trainer.test_dataloaders
        if isinstance(loader, (list, tuple)):
            loader = loader[0]
        if loader is None:
            raise UserError("the fold_bn callback needs a datamodule with a test set to check on")
        batches = []
        for i, (x, _) in enumerate(loader):
            if i >= self.max_batches:
                break
            batches.append(x.to(device))
        return batches

    @torch.no_grad()
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = cast(nn.Module, pl_module.net)
        was_training = net.training
        net.eval()
        folded, plan = fold_batchnorm(net, return_plan=True)
        for name, reason in plan.unfolded.items():
            log.warning("BN %s not folded: %s", name, reason)
        batches = self._batches(trainer, pl_module.device)
        net64 = copy.deepcopy(net).double().eval()
        folded64 = fold_batchnorm(net64)
        with _exact_fp32():
            abs_diff, rel_diff, fp32_diff = 0.0, 0.0, 0.0
            for x in batches:
                ref, out = net64(x.double()), folded64(x.double())
                diff = (ref - out).abs().max().item()
                abs_diff = max(abs_diff, diff)
                rel_diff = max(rel_diff, diff / max(ref.abs().max().item(), 1e-300))
                fp32_diff = max(fp32_diff, (net(x) - folded(x)).abs().max().item())
            t_bn = median_seconds(lambda: net(batches[0]), self.timing_repeats)
            t_folded = median_seconds(lambda: folded(batches[0]), self.timing_repeats)
        self.metrics = {
            "fold/max_abs_diff": abs_diff,
            "fold/max_rel_diff": rel_diff,
            "fold/max_abs_diff_fp32": fp32_diff,
            "fold/pairs": float(len(plan.pairs)),
            "fold/unfolded": float(len(plan.unfolded)),
            "fold/time_bn_ms": 1e3 * t_bn,
            "fold/time_folded_ms": 1e3 * t_folded,
            "fold/time_ratio": t_folded / t_bn,
        }
        net.train(was_training)
        if trainer.is_global_zero:
            self._save(folded, batches[0], plan)
        for logger in trainer.loggers:
            logger.log_metrics(self.metrics, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in self.metrics.items()})
        log.info(
            "BN folding: %d pairs folded, max abs diff %.2e in float64 (%.2e in float32), time folded/BN %.3f",
            len(plan.pairs),
            abs_diff,
            fp32_diff,
            self.metrics["fold/time_ratio"],
        )
        if not abs_diff <= self.atol:  # also catches NaN
            raise UserError(
                f"BN folding check failed: max abs diff {abs_diff:.3e} (float64) between the folded and the "
                f"trained model exceeds callbacks.fold_bn.atol={self.atol:g}; the folded weights are in {self.dirpath}"
            )

    def _save(self, folded: nn.Module, example: torch.Tensor, plan) -> None:
        state = {k: v.detach().cpu() for k, v in folded.state_dict().items()}
        atomic_write(self.dirpath / "state_dict.pt", lambda tmp: torch.save(state, tmp))
        report = {"pairs": plan.pairs, "unfolded": plan.unfolded, **self.metrics}
        atomic_write_json(self.dirpath / "fold.json", report)
        if self.export:
            try:
                program = torch.export.export(folded, (example[:2],))
                atomic_write(self.dirpath / "model.pt2", lambda tmp: torch.export.save(program, tmp))
            except Exception as err:  # export is a convenience; the state dict is the artifact
                log.warning("torch.export of the folded model failed (%s); state_dict.pt is saved", err)

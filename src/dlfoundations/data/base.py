"""A LightningDataModule for datasets that fit in memory as tensors.

Subclasses only say how to load the raw splits (``load_splits``). This class holds the options
every dataset shares: ``subset_size`` (keep the first N training items), label noise and input
corruption (applied once, fixed for the whole run, drawn from ``seed``) and, for image data,
batch augmentation (``augment``: random crop and flip on the device). It serves batches with
:class:`TensorBatchLoader`. An option the data cannot honour (``augment`` on 1-d signals) is
refused in one line, never ignored.

Evaluation sets run in the validation loop every epoch (``eval_sets``; or only at the epochs
of an :class:`~dlfoundations.callbacks.EvalSchedule`) or once in the test loop
after fit (``test_sets``, default just ``test``), each logged under its own prefix:
``val`` (held-out data), ``train_eval`` (the training inputs with the training labels, noisy
or not, in eval mode: the "train accuracy" of the papers) and ``train_clean`` (the training
inputs with their original labels).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from dlfoundations.data.augment import random_crop_flip
from dlfoundations.data.corruption import (
    INPUT_CORRUPTIONS,
    LABEL_NOISE_KINDS,
    corrupt_inputs,
    corrupt_labels,
)
from dlfoundations.data.loader import BatchTransform, TensorBatchLoader
from dlfoundations.errors import UserError
from dlfoundations.seeding import INPUT_CORRUPTION, LABEL_NOISE, generator

# "test" may also be evaluated per epoch (epoch-wise double descent follows the test error).
EVAL_SETS = ("val", "train_eval", "train_clean", "test")
TEST_SETS = ("test", "val", "train_eval", "train_clean")
# Sets with the same inputs (the training inputs, with noisy and with clean labels): one forward pass.
SHARED_INPUTS = ("train_eval", "train_clean")


log = logging.getLogger(__name__)
_SAID: set[str] = set()


def say_once(message: str) -> None:
    """Log a warning once per process (replicas set up one datamodule each, with the same data)."""
    if message not in _SAID:
        _SAID.add(message)
        log.warning(message)


def eval_groups(names: list[str] | tuple[str, ...]) -> list[list[str]]:
    """The evaluation sets served by one loader each, in order: ``train_eval`` and ``train_clean``
    (the same inputs) share one, whose batches are ``(x, y_noisy, y_clean)``; every other set is
    its own, ``(x, y)``. Datamodules and tasks both map loaders to sets with this."""
    groups: list[list[str]] = []
    for name in dict.fromkeys(names):
        shared = next((g for g in groups if name in SHARED_INPUTS and g[0] in SHARED_INPUTS), None)
        if shared is not None:
            shared.append(name)
        else:
            groups.append([name])
    return groups


def check_eval_sets(eval_sets: Sequence[str]) -> None:
    """Refuse a ``data.eval_sets`` entry that is no evaluation set, naming the known ones."""
    unknown = [s for s in eval_sets if s not in EVAL_SETS]
    if unknown:
        raise UserError(f"data.eval_sets has unknown entries {unknown}; use some of {EVAL_SETS}")


@dataclass
class Splits:
    """Raw tensors of a dataset; ``x_val``/``y_val`` may be empty."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def split_pool(x: Tensor, y: Tensor, val_size: int, train_size: int | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``[pool | val]`` from a training split: val is its last ``val_size`` items, and training
    keeps the first ``train_size`` items of the pool (all of it when None)."""
    n_pool = len(x) - val_size
    if n_pool < 1:
        raise UserError(
            f"data.val_size={val_size} leaves none of the {len(x)} training items to train on; use val_size < {len(x)}"
        )
    n_train = n_pool if train_size is None else train_size
    if not 0 < n_train <= n_pool:
        raise UserError(
            f"data.train_size={train_size} with data.val_size={val_size} does not fit the "
            f"{len(x)} training items; use train_size <= {n_pool} or null"
        )
    return x[:n_train], y[:n_train], x[n_pool:], y[n_pool:]


def first(x: Tensor, y: Tensor, size: int | None, what: str) -> tuple[Tensor, Tensor]:
    """The first ``size`` items (all when None), or one line saying there are fewer."""
    if size is None:
        return x, y
    if not 0 < size <= len(x):
        raise UserError(f"data.{what}={size} asks for more than the {len(x)} items there are; use <= {len(x)} or null")
    return x[:size], y[:size]


class InMemoryDataModule(L.LightningDataModule):
    """Base class: noisy labels, corrupted inputs and tensor batching for in-memory data."""

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: list[int] | tuple[int, ...] | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        label_noise: float = 0.0,
        label_noise_kind: str = "uniform",
        input_corruption: str | None = None,
        eval_sets: list[str] | tuple[str, ...] = ("train_eval",),
        test_sets: list[str] | tuple[str, ...] = ("test",),
        on_device: bool = True,
        seed: int = 0,
        subset_size: int | None = None,
        augment: bool = False,
        crop_padding: int = 4,
        flip: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_noise <= 1.0:
            raise UserError(f"data.label_noise={label_noise} is out of range; use a value in [0, 1]")
        if label_noise_kind not in LABEL_NOISE_KINDS:
            raise UserError(f"data.label_noise_kind={label_noise_kind!r} is not known; use one of {LABEL_NOISE_KINDS}")
        if input_corruption is not None and input_corruption not in INPUT_CORRUPTIONS:
            raise UserError(
                f"data.input_corruption={input_corruption!r} is not known; use null or one of {INPUT_CORRUPTIONS}"
            )
        check_eval_sets(eval_sets)
        unknown = [s for s in test_sets if s not in TEST_SETS]
        if unknown or not test_sets:
            raise UserError(f"data.test_sets has unknown entries {unknown}; use some of {TEST_SETS}")
        if batch_size < 1 or eval_batch_size < 1:
            raise UserError("data.batch_size and data.eval_batch_size must be >= 1")
        if subset_size is not None and subset_size < 1:
            raise UserError(f"data.subset_size={subset_size} must be >= 1 or null")
        if crop_padding < 0:
            raise UserError(f"data.crop_padding={crop_padding} must be >= 0")
        self.num_classes = num_classes
        self.declared_shape = tuple(input_shape) if input_shape is not None else None
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.label_noise, self.label_noise_kind = label_noise, label_noise_kind
        self.input_corruption = input_corruption
        self.eval_sets, self.test_sets = list(eval_sets), list(test_sets)
        self.on_device = on_device
        self.seed = seed
        self.subset_size = subset_size
        self.augment, self.crop_padding, self.flip = augment, crop_padding, flip
        if augment and self.declared_shape is not None:
            self._check_augmentable(self.declared_shape)

        self.splits: Splits | None = None
        self.noise_mask: Tensor | None = None
        self._device = torch.device("cpu")

    # -- to be provided by subclasses -------------------------------------------------------
    def load_splits(self) -> Splits:
        """Load the dataset as tensors: float inputs, int64 labels."""
        raise NotImplementedError

    def files_to_write(self) -> list[Path]:
        """Files or folders that loading will create (downloads, caches): checked for write
        permission before anything runs. None by default."""
        return []

    def train_transform(self) -> BatchTransform | None:
        """With ``augment``: random crop (``crop_padding``) and (``flip``) horizontal flip of
        training batches on their device, inside the loader, drawn from (seed, epoch, rank, batch
        index) so a resumed run augments identically; None without."""
        if not self.augment:
            return None
        padding, flip = self.crop_padding, self.flip

        def augment(batch: tuple[Tensor, ...], gen: torch.Generator) -> tuple[Tensor, ...]:
            x, *rest = batch
            return (random_crop_flip(x, padding, flip, gen), *rest)

        return augment

    # -- Lightning hooks --------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        s = self.load_splits()
        shape = tuple(s.x_train.shape[1:])
        if self.declared_shape is not None and shape != self.declared_shape:
            raise UserError(
                f"data.input_shape={list(self.declared_shape)} but the data has shape {list(shape)}; "
                "fix input_shape in the data config (models size themselves from it)"
            )
        if self.augment:
            self._check_augmentable(shape)
        s.x_train, s.y_train = first(s.x_train, s.y_train, self.subset_size, "subset_size")
        if self.input_corruption is not None:
            gen = generator(self.seed, INPUT_CORRUPTION)
            xs = corrupt_inputs({"train": s.x_train, "val": s.x_val, "test": s.x_test}, self.input_corruption, gen)
            s.x_train, s.x_val, s.x_test = xs["train"], xs["val"], xs["test"]
        self.y_train_clean = s.y_train
        if self.label_noise > 0:
            gen = generator(self.seed, LABEL_NOISE)
            s.y_train, self.noise_mask = corrupt_labels(
                s.y_train, self.label_noise, self.num_classes, gen, self.label_noise_kind
            )
        else:
            self.noise_mask = torch.zeros(len(s.y_train), dtype=torch.bool)
        if "val" in self.eval_sets and len(s.x_val) == 0:
            raise UserError("data.eval_sets contains 'val' but data.val_size is 0; set val_size > 0")
        if self.batch_size > len(s.x_train):
            say_once(
                f"data.batch_size={self.batch_size} is larger than the {len(s.x_train)} training items: "
                f"every epoch is one batch of {len(s.x_train)}"
            )
        if self.trainer is not None and str(self.trainer.precision).startswith("64"):
            # trainer.precision=64-true: the net is float64, and so must its inputs be (the task
            # pulls its batches itself, past Lightning's input conversion).
            for field in fields(s):
                if getattr(s, field.name).is_floating_point():
                    setattr(s, field.name, getattr(s, field.name).double())
        self.splits = s

    def _check_augmentable(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3:
            raise UserError(
                f"data.augment=true crops and flips images (channels, height, width), but these inputs have "
                f"shape {list(shape)}; set data.augment=false"
            )

    def _target_device(self) -> torch.device:
        # Keep the dataset on the accelerator when training there: no host->device copy per step.
        trainer = self.trainer
        if self.on_device and trainer is not None and trainer.strategy.root_device.type != "cpu":
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _loader(self, x: Tensor, *labels: Tensor, train: bool) -> TensorBatchLoader:
        device = self._target_device()
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return TensorBatchLoader(
            (x.to(device), *(y.to(device) for y in labels)),
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            seed=self.seed,
            rank=rank,
            world_size=world,
            transform=self.train_transform() if train else None,
        )

    def train_dataloader(self) -> TensorBatchLoader:
        s = self._require_setup()
        return self._loader(s.x_train, s.y_train, train=True)

    def _eval_loaders(self, names: list[str]) -> list[TensorBatchLoader]:
        """One loader per :func:`eval_groups` group: its inputs, then each set's labels."""
        s = self._require_setup()
        sources = {
            "val": (s.x_val, s.y_val),
            "test": (s.x_test, s.y_test),
            "train_eval": (s.x_train, s.y_train),
            "train_clean": (s.x_train, self.y_train_clean),
        }
        return [
            self._loader(sources[group[0]][0], *(sources[name][1] for name in group), train=False)
            for group in eval_groups(names)
        ]

    def val_dataloader(self) -> list[TensorBatchLoader]:
        return self._eval_loaders(self.eval_sets)

    def test_dataloader(self) -> TensorBatchLoader | list[TensorBatchLoader]:
        """The test set, or (``test_sets``) several sets evaluated once after fit."""
        loaders = self._eval_loaders(self.test_sets)
        return loaders[0] if len(loaders) == 1 else loaders

    def _require_setup(self) -> Splits:
        if self.splits is None:
            self.setup()
        assert self.splits is not None
        return self.splits

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self._require_setup().x_train.shape[1:])

"""The course's experiments, as ``make reproduce`` runs them: each a ``python src/train.py -m``
command at its published settings, the figures its page shows, and what ``--quick`` shrinks.

Every experiment here runs offline on a CPU. The GPU-scale ones (:data:`GPU_SCALE`) are listed
with their command; the page shows their results when a run or sweep dir of them is given.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Experiment:
    """One entry of the reproduction: ``overrides`` of ``python src/train.py -m`` (the sweep
    values included), the figures of its sweep dir the page shows (glob patterns, in order), and
    the overrides ``--quick`` appends (tiny epochs and grids: a complete page, not the numbers)."""

    name: str
    title: str
    overrides: tuple[str, ...]
    figures: tuple[str, ...]
    quick: tuple[str, ...] = ()
    minutes: float | None = None  # measured wall minutes at full settings on the 2-core CPU machine
    note: str = ""

    def command(self) -> str:
        return "python src/train.py -m " + " ".join(self.overrides)


@dataclass(frozen=True)
class GpuExperiment:
    """An experiment that needs a GPU and a data set that cannot be downloaded here."""

    name: str
    title: str
    command: str
    needs: str
    figures: tuple[str, ...] = field(default=("summary.png", "report.png", "*/curves.png"))


# Quick runs: two short epochs, the evaluation schedule at its ends, the basic launcher (no worker
# processes to start).
_SHORT = ("trainer.max_epochs=2", "hydra/launcher=basic")
_SCHEDULED_SHORT = (*_SHORT, "callbacks.eval_schedule.num=2")

COURSE: tuple[Experiment, ...] = (
    Experiment(
        "memorize_cpu",
        "Memorizing random labels (Zhang et al. 2017), MLP on MNIST-1D",
        ("experiment=memorize_cpu",),
        ("0/curves.png", "report.png"),
        quick=_SHORT,
    ),
    Experiment(
        "zhang_label_noise",
        "Zhang et al. 2017, Fig. 1b-c: corrupted labels, from none to all (3 seeds)",
        ("experiment=memorize_cpu", "data.label_noise=0,0.2,0.4,0.6,0.8,1.0", "seed=0,1,2", "hydra/launcher=local"),
        ("zhang.png", "report.png"),
        quick=(*_SHORT, "data.label_noise=0,1.0", "seed=0"),
    ),
    Experiment(
        "zhang_inputs",
        "Zhang et al. 2017, Fig. 1a: true labels on shuffled pixels, random pixels, Gaussian inputs",
        (
            "experiment=memorize_cpu",
            "data.label_noise=0",
            "data.input_corruption=null,shuffled_pixels,random_pixels,gaussian",
            "hydra/launcher=local",
        ),
        ("zhang.png", "summary.png", "report.png"),
        quick=(*_SHORT, "data.input_corruption=null,gaussian"),
    ),
    Experiment(
        "bn_fold_cpu",
        "Folding BatchNorm into the preceding layers (MFDNN HW7 P3), smallNet on real MNIST digits",
        ("experiment=bn_fold_cpu",),
        ("0/curves.png", "report.png"),
        quick=("trainer.max_epochs=1", "hydra/launcher=basic"),
    ),
    Experiment(
        "gradient_flow",
        "Vanishing gradients: 20-layer MLPs, sigmoid vs ReLU, plain vs residual (MFDNN HW5-6)",
        ("experiment=gradient_flow", "seed=0,1,2", "hydra/launcher=local"),
        ("summary.png", "report.png"),
        quick=("trainer.max_epochs=1", "hydra/launcher=basic", "seed=0"),
    ),
    Experiment(
        "double_descent_rf",
        "Double descent of random ReLU features with exact ridge (MFDNN HW6 P5)",
        ("experiment=double_descent_rf",),
        ("summary.png", "report.png"),
        quick=("hydra/launcher=basic", "model.width=101,341,1491"),
    ),
    Experiment(
        "double_descent",
        "Deep double descent, MLP on MNIST-1D, 15% and 0% label noise, 5 seeds (Nakkiran et al. 2019)",
        ("experiment=double_descent", "data.label_noise=0.15,0", "seed=0,1,2,3,4"),
        ("summary.png", "heatmap*.png", "report.png"),
        quick=(*_SCHEDULED_SHORT, "data.label_noise=0.15", "model.width=47,9,2", "seed=0,1"),
    ),
    Experiment(
        "double_descent_mnist1d_cnn",
        "Deep double descent, the MNIST-1D notebook's CNN, 15% label noise, 3 seeds",
        ("experiment=double_descent_mnist1d_cnn", "seed=0,1,2"),
        ("summary.png", "heatmap*.png", "report.png"),
        quick=(*_SCHEDULED_SHORT, "model.width=24,10,2", "seed=0"),
    ),
    Experiment(
        "double_descent_samples",
        "Sample-wise double descent (Nakkiran et al. 2019, Sec. 7): more data can hurt",
        ("experiment=double_descent_samples",),
        ("summary.png", "report.png"),
        quick=(*_SHORT, "data.subset_size=4000,2000,1000"),
    ),
    Experiment(
        "memorize_digits",
        "Zhang et al. 2017 with the seed's AlexNet variant, on 3,500 real MNIST digits with random labels",
        ("experiment=memorize_digits",),
        ("0/curves.png", "report.png"),
        quick=("trainer.max_epochs=1", "hydra/launcher=basic", "data.train_size=500"),
    ),
)

GPU_SCALE: tuple[GpuExperiment, ...] = (
    GpuExperiment(
        "memorize",
        "Zhang et al. 2017 with the seed's AlexNet variant on the first 6,000 MNIST images",
        "python src/train.py experiment=memorize trainer.gpus=1",
        "a GPU and MNIST (data/MNIST/raw)",
        ("report.png", "curves.png", "*/curves.png"),
    ),
    GpuExperiment(
        "double_descent_resnet",
        "Deep double descent, ResNet18-k on CIFAR-10, 15% label noise (Nakkiran et al. 2019)",
        "python src/train.py -m experiment=double_descent_resnet",
        "GPUs and CIFAR-10 (data/cifar-10-batches-py)",
    ),
    GpuExperiment(
        "double_descent_cnn",
        "Deep double descent, CNN-k on CIFAR-10 (Nakkiran et al. 2019)",
        "python src/train.py -m experiment=double_descent_cnn",
        "GPUs and CIFAR-10 (data/cifar-10-batches-py)",
    ),
    GpuExperiment(
        "bn_fold",
        "Folding BatchNorm, smallNet on CIFAR-10 (MFDNN HW7 P3)",
        "python src/train.py experiment=bn_fold trainer.gpus=1",
        "a GPU (or patience) and CIFAR-10 (data/cifar-10-batches-py)",
        ("report.png", "curves.png", "*/curves.png"),
    ),
)


def by_name(names: list[str] | None) -> list[Experiment]:
    """The course's experiments named (all when ``names`` is empty), in the course's order; an
    unknown name is a ``ValueError`` naming the known ones."""
    known = {e.name: e for e in COURSE}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; the course has: {', '.join(known)}")
    return [e for e in COURSE if not names or e.name in names]

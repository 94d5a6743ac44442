"""Learning-rate schedules used by the experiments (as ``torch.optim.lr_scheduler`` classes)."""

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class _InverseSqrt:
    def __init__(self, every: int) -> None:
        self.every = every

    def __call__(self, step: int) -> float:
        return (1 + step // self.every) ** -0.5


class InverseSqrtSteps(LambdaLR):
    """lr_t = lr_0 / sqrt(1 + floor(t / every)), t the number of optimizer steps (Nakkiran et al.
    2019 train CNNs with lr_0 = 0.1, every = 512). Step it per optimizer step."""

    def __init__(self, optimizer: Optimizer, every: int = 512, last_epoch: int = -1) -> None:
        super().__init__(optimizer, _InverseSqrt(every), last_epoch)

"""Hydra finds launchers only inside the ``hydra_plugins`` namespace package; this registers
dlfoundations' launchers there (the code lives in ``dlfoundations.launch.slurm`` and
``dlfoundations.launch.packed``)."""

from dlfoundations.launch.packed import PackedLauncher as _PackedLauncher
from dlfoundations.launch.slurm import SlurmLauncher as _SlurmLauncher


class SlurmLauncher(_SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, safe for sweeps: see dlfoundations.launch.slurm."""


class PackedLauncher(_PackedLauncher):
    """The local pool, training an MLP width x seed sweep as a few packs: see dlfoundations.launch.packed."""

"""Hydra finds launchers only inside the ``hydra_plugins`` namespace package; this registers
dlfoundations' SLURM launcher there (the code lives in ``dlfoundations.launch.slurm``)."""

from dlfoundations.launch.slurm import SlurmLauncher as _SlurmLauncher


class SlurmLauncher(_SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, safe for sweeps: see dlfoundations.launch.slurm."""

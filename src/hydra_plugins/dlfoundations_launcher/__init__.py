"""Hydra finds launchers only inside the ``hydra_plugins`` namespace package; this registers
dlfoundations' SLURM launcher there (the code lives in ``dlfoundations.sweeps.slurm_launcher``)."""

from dlfoundations.sweeps.slurm_launcher import SlurmLauncher as _SlurmLauncher


class SlurmLauncher(_SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, safe for sweeps: see dlfoundations.sweeps.slurm_launcher."""

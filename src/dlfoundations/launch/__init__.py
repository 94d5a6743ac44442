"""Launching sweeps: the Hydra sweep callback, the SLURM launcher."""

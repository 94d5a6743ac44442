"""Launching sweeps: the Hydra sweep callback, the local device pool's slots, SLURM."""

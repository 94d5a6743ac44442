"""The run layer: build a run from its config, train it, evaluate a checkpoint, resume."""

"""Axis labels and legends in words: the one place where a metric or config key gets the name a
figure shows (``test/err`` -> test error, ``model.width`` -> width). Unknown keys show as they are."""

WORDS = {
    "test/err": "test error",
    "test/acc": "test accuracy",
    "test/loss": "test loss",
    "val/err": "validation error",
    "val/acc": "validation accuracy",
    "train_eval/err": "train error (noisy labels)",
    "train_eval/acc": "train accuracy (training labels)",
    "train_clean/err": "train error (clean labels)",
    "train_clean/acc": "train accuracy (clean labels)",
    "train/loss": "training loss (running mean over the epoch)",
    "train_eval/loss": "train loss (training labels)",
    "val/loss": "validation loss",
    "train/err": "train error (running, over the epoch)",
    "train/acc": "train accuracy (running, over the epoch)",
    "test/err_fixed": "test error (fixed ridge penalty)",
    "test/err_tuned": "test error (tuned ridge penalty)",
    "grad_flow/first_last_ratio": "gradient norm, first layer / last layer",
    "num_params": "parameters",
    "model.width": "width",
    "model.depth": "depth",
    "model.activation": "activation",
    "data.label_noise": "label noise",
    "data.train_size": "training samples",
    "data.subset_size": "training samples",
    "data.input_corruption": "input corruption",
    "seed": "seed",
}


def words(key: str) -> str:
    return WORDS.get(key, key)

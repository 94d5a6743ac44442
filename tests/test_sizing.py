"""The memory estimate made before training, and the refusals it backs."""

import logging

import hydra
import pytest

from dlfoundations.config.preflight import check_memory
from dlfoundations.config.sizing import available_bytes, estimate
from dlfoundations.errors import UserError
from dlfoundations.models import count_parameters
from dlfoundations.run.train import main
from tests.helpers import MLP, make_cfg


def test_the_estimate_counts_the_real_models_parameters_without_allocating(tmp_path):
    cfg = make_cfg(["experiment=double_descent", "model.width=300"], tmp_path)
    size = estimate(cfg)
    assert size["params"] == count_parameters(hydra.utils.instantiate(cfg.model)) == 105_610
    # SGD with momentum: weights, gradients, one buffer, 4 bytes each; the leaf outputs of
    # Linear, ReLU, Linear, ReLU, Linear for a batch of 100 (Flatten's is a view: nothing new).
    assert size["weights"] == 105_610 * 3 * 4
    assert size["activations"] == 100 * (300 + 300 + 300 + 300 + 10) * 4
    assert (
        estimate(make_cfg(["experiment=double_descent", "model.width=300", "train=false"], tmp_path))["weights"]
        == 105_610 * 4
    )  # testing only: the weights, no gradients or optimizer state
    huge = estimate(make_cfg(["experiment=double_descent", "model.width=100000"], tmp_path))
    assert huge["params"] == 40 * 100_000 + 100_000 + 100_000**2 + 100_000 + 100_000 * 10 + 10  # 1e10, on no memory


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=memorize_cpu", "model.width=1000000"],
        ["experiment=double_descent", "replicas=100000000"],
    ],  # TiB: no machine
)
def test_what_cannot_fit_in_memory_is_refused_naming_the_estimate(overrides, tmp_path):
    free, where = available_bytes("cpu")
    with pytest.raises(UserError, match=r"^this run needs about [\d.e+]+ GiB \(.* parameters") as err:
        check_memory(make_cfg(overrides, tmp_path))
    assert f"{where} has" in str(err.value) and "use a smaller model" in str(err.value)
    check_memory(make_cfg(overrides[:1], tmp_path))  # the experiment itself fits


def test_a_batch_larger_than_the_training_set_is_said_once(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        main(make_cfg([*MLP, "data.batch_size=1000", "replicas=2", "trainer.max_epochs=1"], tmp_path))
    said = [r for r in caplog.records if "data.batch_size=1000 is larger than the 470 training items" in r.getMessage()]
    assert len(said) == 1

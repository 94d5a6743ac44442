"""The MNIST-1D CNN of the double-descent notebook, and the course's numpy stream for random features."""

import numpy as np
import pytest
import torch

from dlfoundations.data.synthetic import LinearRegressionDataModule
from dlfoundations.models import CNN1d, RandomFeatures, count_parameters


@pytest.mark.parametrize("c", [1, 2, 10, 18, 64, 100])
def test_cnn1d_has_6c2_58c_10_parameters_and_maps_40_samples_to_10_logits(c):
    net = CNN1d(width=c)
    assert count_parameters(net) == 6 * c * c + 58 * c + 10
    assert net(torch.zeros(3, 40)).shape == (3, 10)
    assert net.fc.in_features == 5 * c  # 40 -> 19 -> 10 -> 5 positions


def course_replay(p: int, seed: int = 0):
    """The assumed course script, written out with numpy's global generator."""
    np.random.seed(seed)
    beta = np.random.randn(35)
    beta /= np.linalg.norm(beta)
    x_train = np.random.randn(300, 35)
    y_train = x_train @ beta + 0.5 * np.random.randn(300)
    x_val = np.random.randn(60, 35)
    x_test = np.random.randn(30, 35)
    for q in range(1, p + 1, 10):
        W = np.random.randn(q, 35) / np.sqrt(q)
    return x_train, y_train, x_val, x_test, x_test @ beta, W


def test_numpy_stream_replays_the_course_draw_order():
    dm = LinearRegressionDataModule(stream="numpy", seed=0)
    dm.setup()
    x_train, y_train, x_val, x_test, y_test, W = course_replay(21)
    s = dm.splits
    for ours, theirs in (
        (s.x_train, x_train),
        (s.y_train, y_train),
        (s.x_val, x_val),
        (s.x_test, x_test),
        (s.y_test, y_test),
    ):
        assert np.abs(ours.numpy() - theirs).max() <= 1e-12
    net = RandomFeatures(width=21, stream="numpy", data_spec={"seed": 0, "sizes": [300, 60, 30], "noise_std": 0.5})
    assert np.abs(net.W.numpy() - W).max() <= 1e-12  # the third W of the sweep 1, 11, 21
    with pytest.raises(ValueError, match="not on it"):
        RandomFeatures(width=20, stream="numpy")


@pytest.mark.parametrize(
    "experiment",
    [
        "double_descent",
        "double_descent_mnist1d_cnn",
        "double_descent_rf",
        "double_descent_cnn",
        "double_descent_resnet",
    ],
)
def test_double_descent_sweeps_use_the_parallel_launcher_unless_told_otherwise(experiment):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
        default = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
        basic = compose(
            "train", overrides=[f"experiment={experiment}", "hydra/launcher=basic"], return_hydra_config=True
        )
        plain = compose("train", overrides=["experiment=memorize_cpu"], return_hydra_config=True)
    from dlfoundations.devices import is_local_pool

    assert is_local_pool(default.hydra.launcher._target_)  # the local pool, or its packed launcher
    assert ("PackedLauncher" in default.hydra.launcher._target_) == (experiment == "double_descent")
    assert "BasicLauncher" in basic.hydra.launcher._target_  # the command line still wins
    assert "BasicLauncher" in plain.hydra.launcher._target_  # other experiments are unchanged


def test_course_stream_reproduces_the_published_random_features_points(tmp_path):
    from dlfoundations.run.train import main
    from tests.helpers import end_single_run, make_cfg

    # The course solution's figure (2 decimals): fixed lambda 10.41 at p = 341 (the peak), 2.67 at
    # p = 1491; tuned lambda 1.21 at p = 1491.
    peak_cfg = make_cfg(["experiment=double_descent_rf", "model.width=341", "logger=none"], tmp_path / "341")
    peak = main(peak_cfg)
    wide = main(make_cfg(["experiment=double_descent_rf", "model.width=1491", "logger=none"], tmp_path / "1491"))
    assert abs(peak["metrics"]["test/err_fixed"] - 10.41) <= 0.005
    assert abs(wide["metrics"]["test/err_fixed"] - 2.67) <= 0.005
    assert abs(wide["metrics"]["test/err_tuned"] - 1.21) <= 0.005
    end_single_run(peak_cfg)  # as Hydra does after the run: its report
    assert "all measured checks within tolerance" in (tmp_path / "341" / "report.md").read_text()

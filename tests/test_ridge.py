"""Random-features ridge regression: the closed form, and double descent at the peak."""

import pytest
import torch

from dlfoundations.run.train import main
from dlfoundations.tasks import ridge_solve
from tests.helpers import make_cfg


@pytest.mark.parametrize("n,p", [(50, 20), (20, 50)], ids=["primal", "dual"])
@pytest.mark.parametrize("lam", [1e-3, 0.5, 8.0])
def test_ridge_solution_equals_a_least_squares_solve(n, p, lam):
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(n, p, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    # Ridge = least squares on [phi; sqrt(lam) I] theta ~ [y; 0].
    augmented = torch.cat([phi, lam**0.5 * torch.eye(p, dtype=torch.float64)])
    target = torch.cat([y, torch.zeros(p, dtype=torch.float64)])
    expected = torch.linalg.lstsq(augmented, target[:, None]).solution[:, 0]
    assert (ridge_solve(phi, y, lam) - expected).abs().max().item() <= 1e-10
    grad = phi.T @ (phi @ ridge_solve(phi, y, lam) - y) + lam * ridge_solve(phi, y, lam)
    assert grad.abs().max().item() <= 1e-9  # the objective's gradient vanishes


def rf_run(width: int, tmp_path) -> dict[str, float]:
    # The project's torch stream (the experiment defaults to the course's numpy stream, see test_paper_models).
    return main(
        make_cfg(["experiment=double_descent_rf", "data.stream=torch", f"model.width={width}"], tmp_path / str(width))
    )["metrics"]


def test_fixed_lambda_peaks_at_the_interpolation_threshold_and_tuning_removes_it(tmp_path):
    small, peak, wide = rf_run(41, tmp_path), rf_run(291, tmp_path), rf_run(1491, tmp_path)
    # p ~ n = 300: the nearly unregularized fit interpolates the noise and the test error spikes.
    assert peak["test/err_fixed"] > 2 * small["test/err_fixed"]
    assert peak["test/err_fixed"] > 2 * wide["test/err_fixed"]
    assert peak["test/err_fixed"] > 3 * peak["test/err_tuned"]
    # Tuned lambda: no peak; more features never hurt much.
    assert peak["test/err_tuned"] < small["test/err_tuned"] and wide["test/err_tuned"] < 1.2 * peak["test/err_tuned"]
    assert peak["train/err_fixed"] < 0.25 * small["train/err_fixed"]  # near interpolation at the peak
    grid = [2.0**k for k in range(-6, 6)]
    assert all(m["tuned_lambda"] in grid for m in (small, peak, wide))


def test_test_error_is_the_l2_norm_of_the_residual(tmp_path):
    cfg = make_cfg(["experiment=double_descent_rf", "data.stream=torch", "model.width=51"], tmp_path)
    metrics = main(cfg)["metrics"]
    # Recompute from scratch: same seed -> same data and features; fixed-lambda ridge on them.
    from dlfoundations.data import LinearRegressionDataModule
    from dlfoundations.models import RandomFeatures
    from dlfoundations.seeding import seed_run

    seed_run(0)
    dm = LinearRegressionDataModule(seed=0, num_classes=1)
    dm.setup()
    net = RandomFeatures(35, 51)
    s = dm.splits
    theta = ridge_solve(net.features(s.x_train), s.y_train, 0.01)
    err = (net.features(s.x_test) @ theta - s.y_test).norm().item()
    assert metrics["test/err_fixed"] == pytest.approx(err, rel=1e-5)

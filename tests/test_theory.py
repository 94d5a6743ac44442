"""The seeds' theory as executable checks, each with a stated tolerance."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn


@pytest.fixture(autouse=True)
def _float64():
    """The exact comparisons below are in float64."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_manual_backprop_of_a_sigmoid_mlp_equals_autograd():
    # MFDNN HW5 P1: L = 6 layers of width 4, last width 1; sigmoid hidden layers, linear output,
    # loss 1/2 (y - Y)^2.
    torch.manual_seed(0)
    widths = [4, 4, 4, 4, 4, 4, 1]
    A = [torch.randn(widths[l + 1], widths[l], requires_grad=True) for l in range(6)]
    b = [torch.randn(widths[l + 1], requires_grad=True) for l in range(6)]
    x, Y = torch.randn(4), torch.randn(1)
    acts, y = [x], x
    for l in range(6):
        z = A[l] @ y + b[l]
        y = z if l == 5 else torch.sigmoid(z)
        acts.append(y)
    loss = 0.5 * (y - Y).square().sum()
    loss.backward()
    with torch.no_grad():
        delta = acts[-1] - Y  # dL/dz of the linear output layer
        for l in reversed(range(6)):
            assert (torch.outer(delta, acts[l]) - A[l].grad).abs().max() <= 1e-12
            assert (delta - b[l].grad).abs().max() <= 1e-12
            if l:
                s = acts[l]
                delta = (A[l].T @ delta) * s * (1 - s)  # back through sigma: sigma' = s (1 - s)


def test_conv1d_backprop_with_conv_transpose_equals_autograd():
    # MFDNN HW6 (2021) P3: a 1-D conv net; the backward pass of a conv is a transposed conv.
    torch.manual_seed(1)
    ws = [torch.randn(3, 1, 5, requires_grad=True), torch.randn(2, 3, 3, requires_grad=True)]
    bs = [torch.randn(3, requires_grad=True), torch.randn(2, requires_grad=True)]
    x, Y = torch.randn(1, 1, 20), torch.randn(1, 2, 14)
    a0 = x
    z1 = F.conv1d(a0, ws[0], bs[0])
    a1 = torch.sigmoid(z1)
    z2 = F.conv1d(a1, ws[1], bs[1])
    loss = 0.5 * (z2 - Y).square().sum()
    loss.backward()
    with torch.no_grad():
        dz2 = z2 - Y
        dw2 = F.conv1d(a1.transpose(0, 1), dz2.transpose(0, 1)).transpose(0, 1)
        da1 = F.conv_transpose1d(dz2, ws[1])  # no matrix is ever formed
        dz1 = da1 * a1 * (1 - a1)
        dw1 = F.conv1d(a0.transpose(0, 1), dz1.transpose(0, 1)).transpose(0, 1)
        for manual, auto in (
            (dw2, ws[1].grad),
            (dz2.sum((0, 2)), bs[1].grad),
            (dw1, ws[0].grad),
            (dz1.sum((0, 2)), bs[0].grad),
        ):
            assert (manual - auto).abs().max() <= 1e-12


def test_default_linear_init_variance_with_identity_activation():
    # Var(y_L) = 3^-L + sum_{i=1..L} 1 / (3^i n_{L-i}) for x with i.i.d. unit-variance entries.
    widths = [50, 40, 30, 20]  # n_0 .. n_3, L = 3
    L = len(widths) - 1
    expected = 3.0**-L + sum(1.0 / (3**i * widths[L - i]) for i in range(1, L + 1))
    torch.manual_seed(2)
    trials, samples = 4000, []
    for _ in range(trials):
        net = nn.Sequential(*[nn.Linear(widths[l], widths[l + 1]) for l in range(L)])
        with torch.no_grad():
            samples.append(net(torch.randn(widths[0]))[:5])
    y = torch.cat(samples)  # 5 coordinates per trial: same distribution
    var = y.var().item()
    se = var * math.sqrt(2 / (len(y) - 1))  # standard error of a variance (near-Gaussian)
    assert abs(y.mean().item()) <= 4 * math.sqrt(var / len(y)), "mean 0 within 4 standard errors"
    assert abs(var - expected) <= 4 * se, f"Var(y_L) {var:.5f} vs {expected:.5f} (4 se = {4 * se:.5f})"


def test_dropout_commutes_with_relu_and_leaky_relu_not_with_sigmoid():
    torch.manual_seed(3)
    x, p = torch.randn(10_000), 0.3
    mask = (torch.rand_like(x) > p).double() / (1 - p)  # one mask for both orders
    for act in (torch.relu, lambda t: F.leaky_relu(t, 0.1)):  # positively homogeneous
        assert (act(mask * x) - mask * act(x)).abs().max() <= 1e-15
    assert (torch.sigmoid(mask * x) - mask * torch.sigmoid(x)).abs().max() > 0.1


def test_heavy_ball_equals_torch_sgd_momentum():
    torch.manual_seed(4)
    Q = torch.randn(5, 5)
    Q = Q @ Q.T + torch.eye(5)
    c = torch.randn(5)
    grad = lambda x: Q @ x - c  # noqa: E731  f(x) = x^T Q x / 2 - c^T x
    lr, beta = 0.02, 0.9
    x_prev = x = torch.zeros(5)
    param = nn.Parameter(torch.zeros(5))
    opt = torch.optim.SGD([param], lr=lr, momentum=beta, nesterov=False)
    for _ in range(100):
        # Form I (heavy ball): x+ = x - lr grad(x) + beta (x - x-)
        x, x_prev = x - lr * grad(x) + beta * (x - x_prev), x
        # Form II (torch): v = beta v + grad; x = x - lr v
        opt.zero_grad()
        param.grad = grad(param.detach())
        opt.step()
        assert (param.detach() - x).abs().max() <= 1e-12


@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0, 100.0])
def test_logsumexp_with_temperature(beta):
    torch.manual_seed(5)
    x = torch.randn(50, requires_grad=True)
    nu = torch.logsumexp(beta * x, 0) / beta
    gap = (nu - x.max()).item()
    assert -1e-12 <= gap <= math.log(50) / beta + 1e-12
    nu.backward()
    assert (x.grad - torch.softmax(beta * x.detach(), 0)).abs().max() <= 1e-12


def test_optimal_rank_r_factorization_from_the_svd():
    # ESE 546 HW2 P2: min ||X - AB||_F over A (m x r), B (r x n) is attained by A = U_r S_r,
    # B = V_r^T, with error^2 = sum of the discarded sigma_i^2; (A Q, Q^T B) is optimal as well.
    torch.manual_seed(6)
    X, r = torch.randn(30, 20), 5
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    A, B = U[:, :r] * S[:r], Vh[:r]
    err = (X - A @ B).norm() ** 2
    assert abs(err - S[r:].square().sum()) <= 1e-10
    Q, _ = torch.linalg.qr(torch.randn(r, r))
    assert ((A @ Q) @ (Q.T @ B) - A @ B).abs().max() <= 1e-12 and not torch.allclose(A @ Q, A)
    # No other rank-r factorization does better: gradient descent from random starts ends above.
    A2, B2 = torch.randn(30, r, requires_grad=True), torch.randn(r, 20, requires_grad=True)
    opt = torch.optim.Adam([A2, B2], lr=0.05)
    for _ in range(500):
        opt.zero_grad()
        loss = (X - A2 @ B2).norm() ** 2
        loss.backward()
        opt.step()
    assert (X - A2 @ B2).norm().item() ** 2 >= err.item() - 1e-8

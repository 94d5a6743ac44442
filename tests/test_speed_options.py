"""GPU speed options as config (compile, channels_last, bf16-mixed): off by default, and when on
they train the same model (up to the precision asked for)."""

import torch

from dlfoundations.run.train import main
from tests.helpers import CIFAR, MLP, make_cfg


def _run(overrides, out, data_root=None):
    results = main(make_cfg(overrides, out, data_root))
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return results, state


def test_speed_options_are_off_by_default(tmp_path):
    cfg = make_cfg([], tmp_path)
    speed = cfg.speed
    assert (speed.compile, speed.channels_last, cfg.trainer.precision, speed.steps_per_call) == (
        False,
        False,
        "32-true",
        1,
    )


def test_compiled_net_trains_the_same_and_keeps_its_state_dict_keys(tmp_path):
    # The eager backend exercises the wiring (in-place nn.Module.compile) without a C++ build.
    plain, state = _run([*MLP, "speed.steps_per_call=4"], tmp_path / "plain")
    compiled, state_c = _run([*MLP, "speed.steps_per_call=4", "speed.compile={backend:eager}"], tmp_path / "compiled")
    assert list(state_c) == list(state)  # no _orig_mod. prefix
    diff = max((state[k] - state_c[k]).abs().max().item() for k in state)
    assert diff <= 1e-6, f"max abs weight difference {diff} > 1e-6"
    assert compiled["metrics"]["train/loss"] == plain["metrics"]["train/loss"]


def test_channels_last_takes_the_same_steps_in_a_conv_net(tmp_path, data_root, cifar_files_accepted):
    # Two steps: later the rounding differences of other conv kernels grow, as between any two
    # conv algorithms at lr 0.1 (on this data a max-pool or ReLU tie flips at the third step).
    steps = [*CIFAR, "trainer.max_steps=2"]
    plain, state = _run(steps, tmp_path / "plain", data_root)
    last, state_l = _run([*steps, "speed.channels_last=true"], tmp_path / "last", data_root)
    conv = next(k for k, v in state_l.items() if v.dim() == 4)
    assert state_l[conv].is_contiguous(memory_format=torch.channels_last)
    diff = max((state[k].float() - state_l[k].float()).abs().max().item() for k in state)
    assert diff <= 1e-5, f"max abs weight difference {diff} > 1e-5"


def test_bf16_mixed_precision_runs_in_bf16_and_lands_close(tmp_path):
    fp32, _ = _run([*MLP, "speed.steps_per_call=4"], tmp_path / "fp32")
    bf16, _ = _run([*MLP, "speed.steps_per_call=4", "trainer.precision=bf16-mixed"], tmp_path / "bf16")
    gap = abs(bf16["metrics"]["train/loss"] - fp32["metrics"]["train/loss"])
    assert 0 < gap <= 0.05, f"train loss bf16 vs fp32 differs by {gap} (expected in (0, 0.05])"

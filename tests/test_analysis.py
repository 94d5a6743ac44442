"""Parameter / MAC / activation counts and receptive fields reproduce the seeds' numbers."""

import subprocess
import sys

import pytest
import torchvision
from torch import nn

from dlfoundations.analysis.counting import count_model
from dlfoundations.analysis.receptive_field import analytic_receptive_field, receptive_field_box, receptive_field_mask
from dlfoundations.models import VGG, BottleneckBlock, ResNet18, STMBlock
from dlfoundations.models.inception import BottleneckInception, NaiveInception
from tests.helpers import REPO

CONV, LINEAR = (nn.Conv2d,), (nn.Linear,)


def test_alexnet_conv_vs_linear_macs_and_params():
    counts = count_model(torchvision.models.alexnet(), (3, 224, 224))  # 64x55x55 after conv1
    assert counts.total("macs", CONV) == 655_566_528 and counts.total("macs", LINEAR) == 58_621_952
    assert counts.total("params", CONV) == 2_469_696 and counts.total("params", LINEAR) == 58_631_144
    share = counts.total("macs", CONV) / counts.total("macs")
    assert round(100 * share, 2) == 91.79


@pytest.mark.parametrize(
    ("module", "params", "mults", "activations"),
    [
        (NaiveInception(), 1_089_952, 1_115_684_864, 425_984),
        (BottleneckInception(), 346_720, 354_418_688, 622_592),
    ],
    ids=["naive", "bottleneck"],
)
def test_inception_modules(module, params, mults, activations):
    counts = count_model(module, (256, 32, 32))
    assert (counts.total("params"), counts.total("macs"), counts.total("activations")) == (params, mults, activations)


def test_stm_and_resnet_counts():
    assert count_model(STMBlock(), (256, 8, 8)).total("params") == 78_592
    assert count_model(BottleneckBlock(), (256, 8, 8)).total("params") == 213_504
    counts = count_model(ResNet18(1000, stem="imagenet"), (3, 224, 224))
    assert counts.total("params", (nn.BatchNorm2d,)) == 9_600 and counts.total("params") == 11_689_512


def _seed_box(i: int, scale: int, low: int, high: int) -> tuple[int, int]:
    return max(0, scale * i - low), min(223, scale * i + high)


@pytest.mark.parametrize("net", ["torchvision", "zoo"])
@pytest.mark.parametrize(
    ("after", "scale", "low", "high"),
    [
        ("conv2", 1, 2, 2),  # after the 2nd conv: [i-2, i+2]
        ("pool1", 2, 2, 3),  # after pool1: [2i-2, 2i+3]
        ("pool2", 4, 6, 9),  # after pool2: [4i-6, 4i+9]
    ],
)
def test_vgg16_receptive_fields_match_the_seed(net, after, scale, low, high):
    if net == "torchvision":
        model = torchvision.models.vgg16()
        layer = {"conv2": 2, "pool1": 4, "pool2": 9}[after]
    else:  # the zoo's VGG16 without BN: Identity in each BN slot shifts the indices
        model = VGG(1000, batch_norm=False, classifier="torchvision")
        layer = {"conv2": 3, "pool1": 6, "pool2": 13}[after]
    side = 224 // scale
    for i in (0, 1, side // 2, side - 1):
        rows, cols = receptive_field_box(model, (3, 224, 224), f"features.{layer}", (0, i, i))
        assert rows == cols == _seed_box(i, scale, low, high)
    field = analytic_receptive_field(model.features, layer)
    assert (field.size, field.stride, field.start) == (low + high + 1, scale, -low)


def test_receptive_field_is_the_full_rectangle_and_works_on_residual_nets():
    mask = receptive_field_mask(torchvision.models.vgg16(), (3, 64, 64), "features.9", (5, 6, 7))
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    assert int(mask.sum()) == len(rows) * len(cols) == 16 * 16
    # A residual net has no single chain, but the gradient method does not need one.
    rows, cols = receptive_field_box(ResNet18(stem="cifar", width=8), (3, 32, 32), "layer1", (0, 10, 10))
    assert rows == cols == (10 - 5, 10 + 5)  # stem 3x3 + two blocks of two 3x3 convs: radius 5


@pytest.mark.slow
def test_analyze_script_prints_the_seed_numbers(tmp_path):
    out = tmp_path / "alexnet.csv"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "analyze.py"),
            "model=analysis/alexnet_torchvision",
            "input_shape=[3,224,224]",
            f"csv={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "input 3x224x224" in proc.stdout
    assert "655,566,528 (91.79%)" in proc.stdout and "58,621,952 (8.21%)" in proc.stdout
    assert "2,469,696" in proc.stdout and "58,631,144" in proc.stdout
    assert out.read_text().splitlines()[0] == "layer,type,params,macs,activations"


def test_analytic_receptive_field_refuses_string_padding() -> None:
    # padding="same" used to reach the arithmetic as the letter "s" and fail with a TypeError.
    with pytest.raises(ValueError, match="padding='same'"):
        analytic_receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3, padding="same")), 0)

"""Inputs: every experiment with every data config, and one-line errors before any training."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from dlfoundations.config.cli import composition_error_line
from dlfoundations.config.objects import instantiate
from dlfoundations.config.preflight import check_data_dir, check_fit, preflight
from dlfoundations.errors import UserError
from dlfoundations.run.train import main
from tests.helpers import REPO, make_cfg

CONF = REPO / "conf"


def names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def own_data(experiment: str, tmp_path: Path) -> str:
    """The data config an experiment picks."""
    make_cfg([f"experiment={experiment}"], tmp_path)
    return HydraConfig.get().runtime.choices["data"]


# Data configs that need no files (no data_dir): the offline substitutes.
OFFLINE = [d for d in names("data") if "data_dir" not in OmegaConf.load(CONF / "data" / f"{d}.yaml")]
FIT_REFUSAL = re.compile(
    r"^model=\S+ (\(task=\w+\) cannot take|cannot be trained by task=\w+ on) data=(\w+) .*"
    r"(data configs that fit: (?P<fits>[\w, ]+)|use task=\w+ with data=(?P<other>[\w|]+))$"
)
SIZE_REFUSAL = re.compile(r"^data\.(train_size|val_size|test_size|subset_size)\b")
OPTION_REFUSAL = re.compile(r"^data=\w+ has no option (?P<key>\w+) \(an experiment may set it\)")


@pytest.mark.slow
@pytest.mark.parametrize("data", names("data"))
@pytest.mark.parametrize("experiment", names("experiment"))
def test_every_experiment_takes_every_data_config_that_fits(
    experiment, data, tmp_path, data_root, cifar_files_accepted
):
    own = own_data(experiment, tmp_path)
    overrides = [f"experiment={experiment}", f"data={data}", "debug=fast"]
    try:
        cfg = make_cfg(overrides, tmp_path, data_root)
    except ConfigCompositionException as err:  # the experiment sets an option this data config lacks
        line = composition_error_line(err)
        assert line is not None and data != own, f"experiment={experiment} must run on its own data: {err}"
        key = line.split()[0].removeprefix("data.")
        assert key in (OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml").get("data") or {}), line
        assert data not in OFFLINE or own in OFFLINE, f"experiment={experiment} data={data} must run: {line}"
        return
    try:
        preflight(cfg)
        datamodule = instantiate(cfg.data, "data")
        datamodule.prepare_data()
        datamodule.setup()
    except UserError as err:
        assert "\n" not in str(err)
        assert data != own, f"experiment={experiment} must run on its own data: {err}"
        match = FIT_REFUSAL.match(str(err))
        if match:  # the model cannot take this data: the message names what fits
            fits = (match["fits"] or "").split(", ")
            assert data not in fits
            assert own in fits or match["other"], "the experiment's own data config must be among those that fit"
        elif OPTION_REFUSAL.match(str(err)):  # an option of the experiment's own data config
            key = OPTION_REFUSAL.match(str(err))["key"]
            assert key in (OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml").get("data") or {}), str(err)
            assert data not in OFFLINE or own in OFFLINE, f"experiment={experiment} data={data} must run: {err}"
        else:  # the data holds fewer items than the experiment asks for
            assert SIZE_REFUSAL.match(str(err)), f"neither a fit nor a size refusal: {err}"
            offline_substitute = own not in OFFLINE and data in OFFLINE
            assert not offline_substitute, f"experiment={experiment} data={data} (offline, fits the model) must run"
        return
    x = datamodule.splits.x_train
    assert list(x.shape[1:]) == list(cfg.data.input_shape)
    wanted = cfg.data.get("subset_size") or cfg.data.get("train_size")
    if wanted:
        assert len(x) == wanted  # subset_size / train_size honoured, not ignored
    assert datamodule.augment == bool(cfg.data.get("augment", False))
    if own not in OFFLINE and data in OFFLINE:  # the offline substitute runs (own data: test_configs.py)
        overrides.append("data.batch_size=8")  # one small batch of each loop keeps it quick
        if "fold_bn" in cfg.get("callbacks", {}):  # and no torch.export, one timing
            overrides += ["callbacks.fold_bn.export=false", "callbacks.fold_bn.timing_repeats=1"]
        results = main(make_cfg(overrides, tmp_path / "run", data_root))
        assert results["global_step"] == 1  # fast_dev_run: one optimizer step
        assert results["optimized_value"] is not None and not results["nonfinite_metrics"]


def test_memorize_offline_is_one_override(tmp_path):
    """The missing-MNIST error recommends data=mnist_bundled: experiment=memorize adapts to it
    (3,500 of the 5,000 digits to memorize, 500 held out), with everything else unchanged."""
    cfg = make_cfg(["experiment=memorize", "data=mnist_bundled"], tmp_path)
    reference = make_cfg(["experiment=memorize"], tmp_path)
    assert (cfg.data.train_size, cfg.data.val_size, cfg.data.test_size, cfg.data.subset_size) == (3500, 500, 1000, None)
    for key in ("label_noise", "batch_size", "eval_sets"):
        assert cfg.data[key] == reference.data[key]
    assert cfg.model == reference.model and cfg.optimizer == reference.optimizer and cfg.trainer == reference.trainer


def test_augment_on_signals_is_refused_and_works_on_images(tmp_path):
    with pytest.raises(
        UserError, match=r"^data.augment=true crops and flips images .* shape \[40\]; set data.augment=false$"
    ):
        preflight(make_cfg(["data=mnist1d", "data.augment=true"], tmp_path))
    cfg = make_cfg(["data=mnist_bundled", "data.augment=true", "data.train_size=64", "data.test_size=64"], tmp_path)
    datamodule = instantiate(cfg.data, "data")
    datamodule.setup()
    assert datamodule.augment and datamodule.flip is False and datamodule.crop_padding == 4


def test_integer_and_fractional_widths_follow_the_model_signature(tmp_path):
    # MLP takes width: int (a count), AlexNet width: float (a scale): the schemas follow the signatures.
    with pytest.raises(ConfigCompositionException) as err:
        make_cfg(["model=mlp", "model.width=1.5"], tmp_path)
    assert (
        composition_error_line(err.value)
        == "model.width: Value '1.5' of type 'float' could not be converted to Integer"
    )
    assert make_cfg(["model=alexnet", "data=mnist_bundled", "model.width=0.5"], tmp_path).model.width == 0.5


def fit_list(message: str) -> list[str]:
    return message.rsplit("data configs that fit: ", 1)[1].split(", ")


def cli(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [sys.executable, str(REPO / "src" / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (0555; /sys where root ignores modes)."""

    def writable(folder: Path) -> bool:
        try:
            with tempfile.TemporaryFile(dir=folder):
                return True
        except OSError:
            return False

    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        if candidate.is_dir() and not writable(candidate):
            return candidate
    pytest.skip("no directory this process cannot write to (root, and no read-only mount)")


# overrides -> the one line on stderr ({a_file}, {read_only}, {escape}: paths made by the test)
MISTAKES = {
    "resnet18-mnist1d": (
        ["model=resnet18", "data=mnist1d"],
        r"model=resnet18 \(task=classification\) cannot take data=mnist1d \(input shape \[40\], 10 "
        r"classes\): .*; data configs that fit: .*",
    ),
    "vgg16-mnist1d": (
        ["model=vgg16", "data=mnist1d"],
        r"model=vgg16 \(task=classification\) cannot take data=mnist1d .*",
    ),
    "cnn-mnist_bundled": (
        ["model=cnn", "data=mnist_bundled"],
        r"model=cnn \(task=classification\) cannot take data=mnist_bundled \(input shape \[1, 28, 28\], "
        r"10 classes\): .*Output size is too small.*",
    ),
    "alexnet-mnist1d": (
        ["model=alexnet", "data=mnist1d"],
        r"model=alexnet \(task=classification\) cannot take data=mnist1d .*",
    ),
    "random_features": (
        ["model=random_features"],
        r"model=random_features cannot be trained by task=classification on data=mnist1d .*; "
        r"use task=ridge with data=linear_regression",
    ),
    "width": (
        ["model=mlp", "model.width=1.5"],
        r"model.width: Value '1.5' of type 'float' could not be converted to Integer",
    ),
    "data_dir-file": (["paths.data_dir={a_file}"], r"paths.data_dir={a_file} is not a directory; .*"),
    "data_dir-read_only": (["paths.data_dir={read_only}"], r"paths.data_dir={read_only} is not writable .*"),
    "max_epochs-0": (
        ["trainer.max_epochs=0"],
        r"trainer.max_epochs=0 trains nothing; to test weights without training use train=false with .*",
    ),
    "monitor-not-evaluated": (
        ["experiment=memorize_cpu", "data.eval_sets=[]"],
        r"callbacks.stop_when_memorized acts on train_eval/acc, but data.eval_sets=\[\] does not evaluate .*",
    ),
    # Hydra creates the run dir before anything of ours runs: an OSError, then one line.
    "log_dir-file": (
        ["paths.log_dir={a_file}/logs"],
        r"cannot write {a_file}/logs/train/runs/\S+: Not a directory; choose a writable paths.log_dir .*",
    ),
    "log_dir-read_only": (["paths.log_dir={read_only}/logs"], r"cannot write {read_only}/logs\S*: .*; choose a .*"),
    "task_name-dotdot": (
        ["task_name=../../{escape_name}"],
        r"task_name='\.\./\.\./.*' would put the run outside paths.log_dir; .*",
    ),
    "task_name-absolute": (["task_name={escape}"], r"task_name='/.*' would put the run outside paths.log_dir; .*"),
    "task_name-multirun": (
        ["-m", "task_name=../../{escape_name}", "seed=0,1"],
        r"task_name=.* would put the run outside .*",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_mistakes_are_one_line_before_training(case, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    read_only = unwritable_dir(tmp_path) if "read_only" in case else None
    escape = tmp_path.parent / f"{tmp_path.name}_escaped"
    paths = {"a_file": a_file, "read_only": read_only, "escape": escape, "escape_name": escape.name}
    args, line = MISTAKES[case]
    proc = cli([*(a.format(**paths) for a in args), "print_config=false"], tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch("error: " + line.format(**paths), lines[0]), err[-3000:]
    if "data configs that fit" in lines[0]:  # each config listed does fit
        for data in fit_list(lines[0]):
            check_fit(make_cfg([args[0], f"data={data}"], tmp_path / "check"))
    assert not escape.exists()  # nothing was written outside the log dir
    assert not list(tmp_path.rglob("results.json"))  # nothing ran


def test_a_data_dir_that_cannot_be_created_is_refused(tmp_path):
    read_only = unwritable_dir(tmp_path)
    with pytest.raises(UserError, match=r"^paths.data_dir=.*/new is not writable .*"):
        check_data_dir(make_cfg([f"paths.data_dir={read_only}/new"], tmp_path / "check"))


def test_a_mistake_found_while_building_the_run_comes_before_the_config_tree(tmp_path):
    # Lightning refuses max_epochs=-2 when the trainer is built: that error is what the user reads,
    # not the last line under a screen of config (the tree is printed once everything is built).
    proc = cli(["experiment=memorize_cpu", "trainer.max_epochs=-2"], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    assert "max_epochs" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert "optimizer" not in out and "learning_rate" not in out, out[:2000]  # no config tree printed


def test_an_unknown_eval_set_is_named_before_the_callbacks_it_would_starve(tmp_path):
    # memorize_cpu stops on train_eval/acc: with eval_sets=[foo] the typo is the mistake to name,
    # not that the stopping callback would never act.
    with pytest.raises(UserError, match=r"^data.eval_sets has unknown entries \['foo'\]; use some of "):
        preflight(make_cfg(["experiment=memorize_cpu", "data.eval_sets=[foo]"], tmp_path))
    with pytest.raises(UserError, match=r"^callbacks.stop_when_memorized acts on train_eval/acc, but"):
        preflight(make_cfg(["experiment=memorize_cpu", "data.eval_sets=[val]"], tmp_path))

"""Sweep summaries that mean what they show, and the scripts' help and one-line errors."""

import importlib.util
import json
import logging
import subprocess
import sys

import matplotlib.pyplot as plt
import pytest
import yaml
from omegaconf import OmegaConf

from dlfoundations.errors import UserError
from dlfoundations.launch.callback import SweepSummary
from dlfoundations.record.collect import collect
from dlfoundations.results.summary import write_summary
from tests.helpers import REPO


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_job(root, num, overrides, metrics=None, num_params=1000, config=None, error=None, recorded=True):
    """One job dir as a run leaves it: .hydra/overrides.yaml, config.yaml, results or failure."""
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if config is not None:
        (job / "config.yaml").write_text(yaml.safe_dump(config))
    if error:
        (job / "failure.json").write_text(json.dumps({"error": error, "overrides": sorted(overrides)}))
    elif metrics is not None:
        results = {"metrics": metrics, "num_params": num_params}
        if recorded:
            results["overrides"] = sorted(overrides)
        (job / "results.json").write_text(json.dumps(results))
    return job


def noise_sweep(root, noises=(0.0, 0.1, 0.2)):
    """A label-noise sweep: the same model (same num_params) in every job."""
    for i, noise in enumerate(noises):
        make_job(
            root,
            i,
            [f"data.label_noise={noise}"],
            {"test/acc": 0.9 - noise, "train_eval/acc": 1.0},
            num_params=5000,
            config={"data": {"label_noise": noise, "batch_size": 100}},
        )
    return root


def captured_legend(monkeypatch, axis_labels: list | None = None):
    """Legend texts of summary.png, the first figure the summary draws (read before it is closed;
    later figures, such as Zhang's for a label-noise sweep, are not summary.png); its (x, y) axis
    labels into ``axis_labels``."""
    texts = []
    real_close = plt.close
    seen = []

    def close(fig=None):
        if not seen:
            for ax in fig.axes:
                texts.extend(t.get_text() for t in ax.get_legend().get_texts())
                if axis_labels is not None:
                    axis_labels.append((ax.get_xlabel(), ax.get_ylabel()))
        seen.append(fig)
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    return texts


def test_x_is_the_swept_setting_when_num_params_is_constant(tmp_path, monkeypatch):
    axes: list = []
    legend = captured_legend(monkeypatch, axes)
    summary = write_summary(noise_sweep(tmp_path / "noise"), y=["test/err"])
    assert summary["x"] == "data.label_noise"
    assert (tmp_path / "noise" / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert legend == ["test error"]  # words, not metric keys
    assert axes == [("label noise", "test error")]
    # Widths that change the parameter count keep num_params as x.
    for i, width in enumerate((4, 8)):
        make_job(tmp_path / "width", i, [f"model.width={width}"], {"test/acc": 0.5}, num_params=100 * width)
    assert write_summary(tmp_path / "width")["x"] == "num_params"


def test_group_values_come_from_the_runs_config_never_none(tmp_path, monkeypatch):
    legend = captured_legend(monkeypatch)
    sweep = tmp_path / "sweep"
    # batch_size is not overridden: its value is in each run's saved config.yaml.
    # Job 4 inherits the value that jobs 2 and 3 give on the command line: still one group.
    for i, (width, batch) in enumerate(((4, 50), (8, 50), (4, 100), (8, 100), (16, 100))):
        overrides = [f"model.width={width}"] + ([f"data.batch_size={batch}"] if i in (2, 3) else [])
        make_job(sweep, i, overrides, {"test/acc": 0.5}, num_params=100 * width, config={"data": {"batch_size": batch}})
    rows, _ = collect(sweep, keys=("data.batch_size",))
    assert [str(r["data.batch_size"]) for r in rows] == ["50", "50", "100", "100", "100"]
    write_summary(sweep, y=["test/err"], group_by="data.batch_size")
    assert legend == ["test error (data.batch_size = 50)", "test error (data.batch_size = 100)"]
    assert not any("None" in text for text in legend)


def test_stale_failed_txt_goes_once_every_job_finished(tmp_path):
    sweep = noise_sweep(tmp_path)
    make_job(sweep, 3, ["data.label_noise=0.3"], error="RuntimeError: out of memory")
    write_summary(sweep)
    assert "job 3" in (sweep / "failed.txt").read_text()
    (sweep / "3" / "failure.json").unlink()
    (sweep / "3" / "results.json").write_text(
        json.dumps({"metrics": {"test/acc": 0.6}, "num_params": 5000, "overrides": ["data.label_noise=0.3"]})
    )
    summary = write_summary(sweep)
    assert not summary["failed"] and not (sweep / "failed.txt").exists()


def test_files_of_an_earlier_launchs_summary_that_this_one_does_not_rewrite_are_set_aside(tmp_path):
    from dlfoundations.record.jobs import start_launch

    sweep = noise_sweep(tmp_path)
    start_launch(sweep)
    first = write_summary(sweep, figures=["summary", "zhang"])
    assert (sweep / "zhang.png").exists() and (sweep / "zhang.pdf").exists(), first["written"]
    # The same launch summarized again with fewer figures (scripts/summarize_sweep.py): nothing moves.
    write_summary(sweep, figures=["summary"])
    assert (sweep / "zhang.png").exists() and not (sweep / "superseded").exists()
    # A relaunch (other overrides) draws only summary.png: the earlier launch's zhang figure, its
    # PDF and its table move to superseded/; the new summary's files stay.
    (sweep / "notes.txt").write_text("the user's own file")
    start_launch(sweep)
    second = write_summary(sweep, figures=["summary"])
    assert not any((sweep / name).exists() for name in ("zhang.png", "zhang.pdf", "zhang.csv"))
    (aside,) = (sweep / "superseded").iterdir()
    assert {"zhang.png", "zhang.pdf", "zhang.csv"} <= {p.name for p in aside.iterdir()}
    assert all(p.exists() for p in second["written"]) and (sweep / "summary.pdf").exists()
    assert (sweep / "notes.txt").exists()  # never written by a summary: never moved
    assert "zhang.png" not in json.loads((sweep / "summary_files.json").read_text())["files"]


def test_results_of_other_overrides_are_not_shown_as_this_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, ["model.width=4"], {"test/acc": 0.5}, num_params=400)
    job = make_job(sweep, 1, ["model.width=8"], {"test/acc": 0.7}, num_params=800)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model.width=2"]))  # re-launched, not yet run
    rows, failed = collect(sweep)
    assert [r["model.width"] for r in rows] == ["4"]
    assert failed[0]["job"] == "1" and "model.width=8" in failed[0]["error"]


def test_a_sweep_without_finished_jobs_writes_and_claims_no_plot(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    for i in range(2):
        make_job(sweep, i, [f"model.width={i + 1}"], error="RuntimeError: boom")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exit_:
        SweepSummary().on_multirun_end(config)
    assert "2 of 2 sweep jobs failed" in str(exit_.value.code) and "summary.csv" not in str(exit_.value.code)
    assert not (sweep / "summary.png").exists() and not (sweep / "summary.csv").exists()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sweep summary:")]
    assert "summary.png" not in line and line.endswith(str(sweep / "failed.txt"))


def test_summarize_script_refuses_a_bogus_metric_and_keeps_the_summary(tmp_path, capsys):
    script = load_script("summarize_sweep")
    sweep = noise_sweep(tmp_path / "sweep")
    assert script.main([str(sweep)]) == 0
    assert "x = data.label_noise" in capsys.readouterr().out
    before = {name: (sweep / name).read_bytes() for name in ("summary.png", "summary.csv")}
    stamps = {name: (sweep / name).stat().st_mtime_ns for name in before}
    for args, named in (
        (["--y", "bogus/metric"], "bogus/metric"),
        (["--x", "model.nope"], "model.nope"),
        (["--group-by", "data.nope"], "data.nope"),
    ):
        assert script.main([str(sweep), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and named in err
        assert "test/err" in err and "train_eval/acc" in err  # names what is there
    # Grouping by the only swept setting leaves one x for every point: refused, the summary kept.
    assert script.main([str(sweep), "--group-by", "data.label_noise"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --group-by data.label_noise leaves one value (num_params is the same in every job)")
    # With seeds, the seed would be the x axis: refused too. Grouping a width sweep by seed is fine.
    from dlfoundations.results.summary import check_options

    seeded = [{"data.label_noise": n, "seed": s, "num_params": 10, "test/err": 0.5} for n in (0, 0.1) for s in (0, 1)]
    with pytest.raises(UserError, match=r"^--group-by data.label_noise leaves only the seed for the x axis"):
        check_options(seeded, None, None, "data.label_noise")
    widths = [{"model.width": w, "seed": s, "num_params": 10 * w, "test/err": 0.5} for w in (1, 2) for s in (0, 1)]
    check_options(widths, None, None, "seed")
    assert {name: (sweep / name).read_bytes() for name in before} == before
    assert {name: (sweep / name).stat().st_mtime_ns for name in before} == stamps


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nope", "is not a directory"),
        (lambda p: p, "no sweep jobs"),
    ],
)
def test_summarize_script_bad_dirs_are_one_line(tmp_path, capsys, make, message):
    assert load_script("summarize_sweep").main([str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model=nonexistent"], "Could not find 'model/nonexistent'; available: alexnet, cnn, "),
        (["model=vgg16", "data=mnist1d"], "VGG cannot take an input of shape [40]"),
        (["model=mlp", "model.width=abc"], "model.width: Value 'abc' of type 'str' could not be converted to Integer"),
        (["model=mlp", "input_shape=[3,x]"], "input_shape=[3,x] is not a list of positive integers"),
        (["model=mlp", "nonexistent.key=1"], "Could not override 'nonexistent.key'"),
        ([], "name a model config"),
    ],
)
def test_analyze_script_errors_are_one_line(args, message, capsys):
    assert load_script("analyze").main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_analyze_script_unwritable_csv_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert load_script("analyze").main(["model=mlp", f"csv={blocker}/counts.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err


@pytest.mark.parametrize("script", ["analyze", "summarize_sweep"])
def test_scripts_have_help(script):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{script}.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert "usage:" in proc.stdout and "python scripts/" in proc.stdout


def test_a_corrupt_results_json_is_one_failed_job_and_the_rest_is_summarized(tmp_path):
    sweep = noise_sweep(tmp_path / "sweep", noises=(0.0, 0.1, 0.2, 0.3))
    (sweep / "1" / "results.json").write_text('{"metrics": {"test/acc"')  # cut off mid-write by hand
    (sweep / "2" / "results.json").write_text("[0.5]")  # JSON, but no object
    summary = write_summary(sweep)
    assert [r["job"] for r in summary["rows"]] == ["0", "3"]
    errors = {f["job"]: f["error"] for f in summary["failed"]}
    assert "results.json is unreadable (JSONDecodeError" in errors["1"] and "holds a list" in errors["2"]
    assert len((sweep / "summary.csv").read_text().splitlines()) == 3
    report = load_script("report")
    assert report.main([str(sweep)]) == 2  # no reference block in these configs: one line, no traceback


def test_the_summary_covers_the_latest_launch_only(tmp_path, caplog):
    # A 6-job grid, then a 2-job grid launched into the same sweep dir: jobs 2..5 are the old grid's.
    from dlfoundations.record.jobs import record_job, start_launch

    sweep = tmp_path / "sweep"
    start_launch(sweep)
    for i in range(6):
        make_job(sweep, i, [f"seed={i}"], {"test/acc": 0.5})
        record_job(sweep / str(i), [f"seed={i}"])
    start_launch(sweep)
    for i in range(2):
        (sweep / str(i) / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={i}"]))
        record_job(sweep / str(i), [f"seed={i}"])  # skip_finished: the job is of this launch again
    with caplog.at_level(logging.WARNING):
        summary = write_summary(sweep)
    assert [r["job"] for r in summary["rows"]] == ["0", "1"] and not summary["failed"]
    assert any("job dir(s) 2, 3, 4, 5 are of an earlier launch" in r.getMessage() for r in caplog.records)


def test_the_same_run_in_two_jobs_is_counted_once(tmp_path, caplog):
    # replicas=2 seed=0,1: seed 1 is replica 1 of job 0 and replica 0 of job 1.
    sweep = tmp_path / "sweep"
    make_job(sweep, 0, ["replicas=2", "seed=0"], {"test/acc": 0.5})
    make_job(sweep, 1, ["replicas=2", "seed=1"], {"test/acc": 0.6})
    make_job(sweep, 2, ["seed=1", "replicas=2"], {"test/acc": 0.6})
    with caplog.at_level(logging.WARNING):
        rows, _ = collect(sweep)
    assert [r["job"] for r in rows] == ["0", "1"]
    assert any("2 is the same run as 1" in r.getMessage() for r in caplog.records)

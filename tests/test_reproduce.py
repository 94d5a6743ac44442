"""make reproduce (dlfoundations.reproduce): the course's commands exist, the runner resumes, and the
page says for every experiment what happened: never a pass for a run that is missing or failed."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from dlfoundations.atomic import atomic_write_json
from dlfoundations.config.checks import validate
from dlfoundations.config.compose import compose_config
from dlfoundations.reproduce.course import COURSE, GPU_SCALE, by_name
from dlfoundations.reproduce.entries import NOT_DONE, OUT, PASSED, entries
from dlfoundations.reproduce.page import check_rows, write_page
from dlfoundations.reproduce.runner import (
    DONE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    Status,
    complete,
    expected_runs,
    merged,
    overrides_of,
    run_experiment,
    status_path,
    sweep_dir,
    train_command,
)
from tests.synthetic_sweeps import make_sweep


def first_job(overrides: list[str]) -> list[str]:
    """A sweep's first job: each comma list's first value (the hydra launcher choice dropped)."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.startswith("hydra/"):
            continue
        out.append(f"{key}={value.split(',')[0]}" if "," in value and not value.startswith("[") else o)
    return out


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("experiment", COURSE, ids=[e.name for e in COURSE])
def test_every_course_command_composes(experiment, quick, tmp_path):
    cfg = compose_config(first_job(overrides_of(experiment, quick)), str(tmp_path))
    validate(cfg)
    assert cfg.reference is not None, f"{experiment.name}: the page needs a reference block to check"


def test_the_course_counts_its_runs_from_the_sweep_grids():
    # Sweep values of the command line times those of the experiment's hydra.sweeper.params.
    (dd,) = by_name(["double_descent"])
    assert expected_runs(overrides_of(dd, quick=False)) == 19 * 2 * 5
    assert expected_runs(overrides_of(dd, quick=True)) == 3 * 2  # widths 47, 9, 2 x seeds 0, 1
    (cnn,) = by_name(["double_descent_mnist1d_cnn"])
    assert expected_runs(overrides_of(cnn, quick=False)) == 29 * 3
    (samples,) = by_name(["double_descent_samples"])  # replicas=3: three seeds' runs in each job
    assert expected_runs(overrides_of(samples, quick=False)) == 11 * 3
    (single,) = by_name(["memorize_cpu"])
    assert expected_runs(overrides_of(single, quick=False)) == 1
    # A key the command line fixes is not swept, though the yaml sweeps it (the command line wins).
    assert expected_runs(["experiment=double_descent", "model.width=47"]) == 1
    assert expected_runs(["experiment=nonexistent"]) is None  # the child says why, in one line


def test_quick_overrides_replace_the_full_ones_of_their_key():
    assert merged(["a=1,2", "b=3", "+c=4"], ["a=1", "c=5"]) == ["b=3", "a=1", "c=5"]
    (zhang,) = by_name(["zhang_label_noise"])
    quick = overrides_of(zhang, quick=True)
    assert [o for o in quick if o.startswith("data.label_noise=")] == ["data.label_noise=0,1.0"]
    with pytest.raises(ValueError, match="unknown experiment.*the course has: memorize_cpu"):
        by_name(["memorise_cpu"])


def test_the_child_command_writes_into_the_reproductions_sweep_dir_and_skips_finished_runs(tmp_path):
    (dd,) = by_name(["double_descent"])
    command = train_command(dd, tmp_path, quick=False)
    assert command[1:4] == ["-m", "dlfoundations.run.train", "-m"]
    assert f"hydra.sweep.dir={(tmp_path / 'runs' / 'double_descent').resolve()}" in command
    assert command[-1] == "skip_finished=true"


def _status(out, name, state, finished, expected, code=0, command=None):
    status = Status(name, command or ["x"], state, code, 12.0, 1, expected, finished, 0, f"logs/{name}.log")
    atomic_write_json(status_path(out, name), status.__dict__)


def _reference(points):
    return {
        "reference": {
            "source": "test",
            "curves": [
                {"name": "acc", "metric": "test/acc", "x": "model.width", "tolerance": 0.05, "points": points},
            ],
        }
    }


def test_verdicts_never_call_a_missing_interrupted_or_failed_experiment_a_pass(tmp_path):
    out = tmp_path / "out"
    jobs = [({"model.width": w}, {"test/acc": 0.5}, w) for w in (1, 2)]
    # memorize_cpu: both runs within tolerance, the command done -> reproduced.
    make_sweep(sweep_dir(out, "memorize_cpu"), jobs, _reference([[1, 0.5], [2, 0.52]]))
    _status(out, "memorize_cpu", DONE, 2, 2)
    # zhang_label_noise: the same results, but interrupted after 2 of 18 runs.
    make_sweep(sweep_dir(out, "zhang_label_noise"), jobs, _reference([[1, 0.5]]))
    _status(out, "zhang_label_noise", INTERRUPTED, 2, 18, code=130)
    # zhang_inputs: a check out of tolerance.
    make_sweep(sweep_dir(out, "zhang_inputs"), jobs, _reference([[1, 0.9]]))
    _status(out, "zhang_inputs", DONE, 2, 2)
    # bn_fold_cpu: the command failed before any run.
    _status(out, "bn_fold_cpu", FAILED, 0, 1, code=2)
    # gradient_flow: every check within tolerance, but one run has no results (it failed).
    sweep = make_sweep(sweep_dir(out, "gradient_flow"), jobs, _reference([[1, 0.5]]))
    (sweep / "1" / "results.json").unlink()
    (sweep / "1" / "failure.json").write_text(json.dumps({"error": "boom"}))
    _status(out, "gradient_flow", DONE, 1, 2, code=1)
    # double_descent_mnist1d_cnn: started, never recorded an end (a SIGKILL, or still running).
    make_sweep(sweep_dir(out, "double_descent_mnist1d_cnn"), jobs, _reference([[1, 0.5]]))
    _status(out, "double_descent_mnist1d_cnn", RUNNING, 0, 87, code=None)
    # double_descent_rf: done, its runs all within tolerance, but fewer than the grid has.
    make_sweep(sweep_dir(out, "double_descent_rf"), jobs, _reference([[1, 0.5]]))
    _status(out, "double_descent_rf", DONE, 2, 150)

    # memorize_digits: finished, but its reference cannot be checked (a curve without a tolerance).
    broken = _reference([[1, 0.5]])
    del broken["reference"]["curves"][0]["tolerance"]
    make_sweep(sweep_dir(out, "memorize_digits"), jobs, broken)
    _status(out, "memorize_digits", DONE, 2, 2)

    found = {e.name: e for e in entries(out, quick=False)}
    digits = found["memorize_digits"]
    assert digits.kind == OUT and digits.verdict.startswith("its reference cannot be checked: reference curve needs")
    assert (found["memorize_cpu"].kind, found["memorize_cpu"].verdict) == (
        PASSED,
        "reproduced: 2 of 2 checks within tolerance",
    )
    assert found["zhang_label_noise"].kind == NOT_DONE
    assert found["zhang_label_noise"].verdict == "interrupted: 2 of 18 runs finished"
    assert found["zhang_inputs"].kind == OUT and found["zhang_inputs"].verdict.startswith("1 of 1 checks out of")
    assert found["bn_fold_cpu"].kind == OUT and "failed (exit code 2" in found["bn_fold_cpu"].verdict
    assert found["gradient_flow"].kind == OUT and "1 runs failed" in found["gradient_flow"].verdict
    assert (
        found["double_descent_rf"].kind == OUT and "only 2 of 150 runs finished" in found["double_descent_rf"].verdict
    )
    assert found["double_descent"].verdict == "not run" and found["double_descent"].kind == NOT_DONE
    cnn = found["double_descent_mnist1d_cnn"]
    assert cnn.kind == NOT_DONE and cnn.verdict.startswith("running, or stopped without recording its end: 2 of 87")
    gpu = [found[g.name] for g in GPU_SCALE]
    assert all(e.verdict.startswith("needs ") and e.kind != PASSED for e in gpu)
    assert sum(e.kind == PASSED for e in found.values()) == 1


def test_a_crash_is_no_finished_experiment_and_only_a_complete_one_is_kept(tmp_path, monkeypatch):
    import dlfoundations.reproduce.runner as runner

    (experiment,) = by_name(["memorize_cpu"])
    out = tmp_path / "out"
    jobs = [({"model.width": w}, {"test/acc": 0.5}, w) for w in (1, 2)]
    sweep = make_sweep(sweep_dir(out, experiment.name), jobs, _reference([[1, 0.5]]))

    def ending(code):  # the child: exits with ``code`` and writes nothing
        monkeypatch.setattr(runner, "train_command", lambda *a: [sys.executable, "-c", f"raise SystemExit({code})"])
        status = run_experiment(experiment, out, quick=False, say=lambda line: None)
        return status, complete(status, experiment, out, False)

    # Exit 1 (a traceback exits 1 too) with no failed run on record: a crash, not a finished sweep.
    status, kept = ending(1)
    assert (status.state, status.failed_runs, kept) == (FAILED, 0, False)
    # Exit 0 with every expected run finished: done and kept.
    monkeypatch.setattr(runner, "expected_runs", lambda overrides: 2)
    status, kept = ending(0)
    assert (status.state, status.finished_runs, kept) == (DONE, 2, True)
    # The sweep dir deleted since: not kept, whatever the status file remembers.
    sweep.rename(tmp_path / "aside")
    assert not complete(status, experiment, out, False)
    (tmp_path / "aside").rename(sweep)
    # Exit 1 with a run killed without a trace (no results.json): the sweep ended, one run failed,
    # and a second make reproduce runs the experiment again (skip_finished runs the missing one).
    (sweep / "1" / "results.json").unlink()
    status, kept = ending(1)
    assert (status.state, status.finished_runs, status.failed_runs, kept) == (DONE, 1, 1, False)


def test_the_page_lists_every_experiment_and_check_with_relative_links(tmp_path):
    out = tmp_path / "out"
    jobs = [({"model.width": w, "seed": s}, {"test/acc": 0.5 + 0.01 * s}, w) for w in (1, 2) for s in (0, 1)]
    sweep = make_sweep(sweep_dir(out, "double_descent"), jobs, _reference([[1, 0.5], [2, 0.9], [4, 0.5]]))
    (sweep / "summary.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    _status(out, "double_descent", DONE, 4, 4)
    page, items = write_page(out, quick=False)
    text = page.read_text()
    assert len(re.findall(r'<tr class="experiment-row"', text)) == len(COURSE) + len(GPU_SCALE)
    assert len(re.findall(r'<tr class="check-row"', text)) == 3  # one per published point
    assert "0.505 ± 0.0071 (n=2)" in text  # width 1: mean and std over the two seeds
    assert 'src="runs/double_descent/summary.png"' in text
    assert str(tmp_path) not in text  # every link relative: the folder can be moved or shared
    markdown = (out / "REPORT.md").read_text()
    assert "| double_descent" not in markdown or "[double_descent](#double_descent)" in markdown
    assert markdown.count("not measured") >= 1 and "OUT OF TOLERANCE" in markdown


def chromium() -> str:
    """Debian's chromium (``.ci/run`` installs it); where it is missing the browser test is skipped,
    saying so, except under CI (``CI`` set), where it fails."""
    import shutil

    found = os.environ.get("DLF_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "needs Debian's chromium (apt-get install chromium) for the page's browser test"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def open_page(page_path, screenshot=None) -> dict:
    """Load the page in headless Chromium at a laptop's size; what loaded and what complained."""
    from playwright.sync_api import sync_playwright

    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=flags)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        seen = page.evaluate(
            """() => ({
                images: Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth]),
                experiments: Array.from(document.querySelectorAll('tr.experiment-row')).map(r => r.dataset.name),
                checks: document.querySelectorAll('tr.check-row').length,
                overflow: document.documentElement.scrollWidth - window.innerWidth,
            })"""
        )
        if screenshot:
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return {**seen, "errors": errors}


@pytest.mark.slow
def test_quick_reproduction_builds_a_page_that_loads_in_a_real_browser_and_resumes(tmp_path):
    chromium()  # before the run: a machine without the browser says so at once
    out = tmp_path / "reproduction-quick"
    command = [sys.executable, "-m", "dlfoundations.reproduce", "--quick", "--out", str(out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "DLF_DATA_DIR": str(tmp_path / "data")}
    first = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    for experiment in COURSE:  # progress per experiment: a start and an end line each
        assert re.search(rf"\] {experiment.name}: done, \d+ runs finished", first.stdout), experiment.name

    seen = open_page(out / "index.html", screenshot=tmp_path / "page.png")
    assert seen["errors"] == []
    assert seen["experiments"] == [e.name for e in COURSE] + [g.name for g in GPU_SCALE]
    broken = [src for src, width in seen["images"] if width <= 0]
    assert not broken and len(seen["images"]) >= len(COURSE), (broken, seen["images"])
    items = entries(out, quick=True)
    assert seen["checks"] == sum(len(check_rows(e.report)) for e in items if e.report)
    assert all(e.report is not None for e in items if not e.gpu)  # every CPU experiment checked something
    assert seen["overflow"] <= 0  # nothing wider than a laptop's screen

    # Resumable: what finished is kept, nothing runs again.
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("done earlier") == len(COURSE)


def test_a_gpu_experiments_own_run_or_sweep_dir_is_checked_on_the_page(tmp_path):
    from dlfoundations.reproduce.entries import gpu_entry
    from tests.synthetic_sweeps import write_job

    (memorize,) = [g for g in GPU_SCALE if g.name == "memorize"]
    reference = {
        "reference": {
            "source": "t",
            "curves": [{"name": "a", "metric": "test/acc", "tolerance": 0.05, "points": [{"y": 0.1}]}],
        }
    }
    run = write_job(tmp_path / "run", {"seed": 0}, {"test/acc": 0.12}, 10, reference)  # a single run's dir
    entry = gpu_entry(memorize, run)
    assert (entry.kind, entry.verdict) == (PASSED, "reproduced: 1 of 1 checks within tolerance")
    missing = gpu_entry(memorize, tmp_path / "nowhere")
    assert missing.kind == OUT and "is not a directory" in missing.verdict


def test_a_damaged_record_is_said_on_its_row_and_the_page_still_written(tmp_path):
    out = tmp_path / "out"
    jobs = [({"model.width": w}, {"test/acc": 0.5}, w) for w in (1, 2)]
    for name in ("memorize_cpu", "zhang_inputs"):
        make_sweep(sweep_dir(out, name), jobs, _reference([[1, 0.5]]))
        _status(out, name, DONE, 2, 2)
    broken_yaml = sweep_dir(out, "zhang_inputs") / "1" / ".hydra" / "overrides.yaml"
    broken_yaml.write_text("- model.width=2\n- 'unterminated\n")
    page, items = write_page(out, quick=False)
    found = {e.name: e for e in items}
    damaged = found["zhang_inputs"]
    assert damaged.kind == OUT and damaged.verdict.startswith("its records cannot be read (")
    assert found["memorize_cpu"].kind == PASSED and "its records cannot be read" in page.read_text()


def test_a_page_rebuilt_without_quick_still_says_its_runs_were_quick_and_shows_their_command(tmp_path):
    (experiment,) = by_name(["double_descent"])
    out = tmp_path / "out"
    jobs = [({"model.width": w, "seed": s}, {"test/acc": 0.5}, w) for w in (2, 9, 47) for s in (0, 1)]
    make_sweep(sweep_dir(out, experiment.name), jobs, _reference([[2, 0.5]]))
    _status(out, experiment.name, DONE, 6, 6, command=train_command(experiment, out, quick=True))
    page, items = write_page(out, quick=False)
    (entry,) = [e for e in items if e.name == experiment.name]
    assert entry.quick and entry.command == "python src/train.py -m " + " ".join(overrides_of(experiment, True))
    assert "seed=0,1,2,3,4" not in entry.command and "<b>Quick run</b>" in page.read_text()
    # The full command's record is no quick run, and no --quick flag makes it one.
    _status(out, experiment.name, DONE, 6, 6, command=train_command(experiment, out, quick=False))
    (entry,) = [e for e in entries(out, quick=False) if e.name == experiment.name]
    assert not entry.quick and entry.command == experiment.command()
    page, _ = write_page(out, quick=True)
    assert "<b>Quick run</b>" not in page.read_text()


def test_the_command_line_refuses_what_it_cannot_do_with_exit_code_2(tmp_path, capsys):
    import fcntl

    from dlfoundations.reproduce.__main__ import main
    from tests.synthetic_sweeps import write_job

    other = write_job(tmp_path / "memorize_cpu_run", {"seed": 0}, {"test/acc": 0.1}, 10, {"task_name": "memorize_cpu"})
    own = write_job(tmp_path / "memorize_run", {"seed": 0}, {"test/acc": 0.1}, 10, {"task_name": "memorize"})
    # A run of experiment=memorize under a task_name of one's own is memorize's (Hydra's record says).
    renamed = write_job(tmp_path / "renamed_run", {"seed": 0}, {"test/acc": 0.1}, 10, {"task_name": "memorize_a100"})
    (renamed / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      experiment: memorize\n")
    damaged = write_job(tmp_path / "damaged_run", {"seed": 0}, {"test/acc": 0.1}, 10, {"task_name": "memorize"})
    (damaged / ".hydra" / "config.yaml").write_text("task_name: 'unterminated\n")
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "out"
    (tmp_path / "lock_is_a_dir" / ".lock").mkdir(parents=True)
    refused = {
        "another experiment's dir": ["--results", f"memorize={other}"],
        "a damaged config": ["--results", f"memorize={damaged}"],
        "one experiment twice": ["--results", f"memorize={own}", f"memorize={own}"],
        "--page with --only": ["--page", "--only", "memorize_cpu", "--out", str(out)],
        "an --out that cannot be made": ["--out", str(tmp_path / "a_file" / "x"), "--only", "memorize_cpu"],
        "an --out that cannot be written": ["--out", str(tmp_path / "lock_is_a_dir"), "--only", "memorize_cpu"],
    }
    for why, argv in refused.items():
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2, why
    err = capsys.readouterr().err
    assert "that dir holds memorize_cpu runs, not memorize" in err and "is given twice" in err
    assert "its config cannot be read" in err and "cannot write there" in err
    assert main(["--list", "--results", f"memorize={renamed}"]) == 0
    capsys.readouterr()
    # Another make reproduce writing the same dir (it holds the lock): refused before anything runs.
    out.mkdir()
    held = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        with pytest.raises(SystemExit) as stop:
            main(["--only", "memorize_cpu", "--out", str(out)])
        assert stop.value.code == 2 and "another make reproduce" in capsys.readouterr().err
    finally:
        os.close(held)
    assert not (out / "status").exists()
    # --list says what would run: only the experiments named, with --quick's command.
    assert main(["--list", "--quick", "--only", "double_descent"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert listed == [
        f"double_descent: python src/train.py -m {' '.join(overrides_of(by_name(['double_descent'])[0], True))}"
    ]


def test_a_sigterm_is_passed_on_to_the_sweep_as_ctrl_c_and_recorded_as_an_interruption(tmp_path, monkeypatch):
    import dlfoundations.reproduce.runner as runner

    (experiment,) = by_name(["memorize_cpu"])
    out = tmp_path / "out"
    make_sweep(sweep_dir(out, experiment.name), [({"model.width": 1}, {"test/acc": 0.5}, 1)], _reference([[1, 0.5]]))
    # The child: waits, and on SIGINT (what Ctrl-C sends a sweep) exits 130 as a sweep does.
    child = "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    raise SystemExit(130)"
    monkeypatch.setattr(runner, "train_command", lambda *a: [sys.executable, "-c", child])
    monkeypatch.setattr(runner, "POLL_SECONDS", 1.0)

    def say(line):  # the parent's SIGTERM handler raises Terminated at some point of the wait
        raise runner.Terminated

    with pytest.raises(runner.Terminated):
        run_experiment(experiment, out, quick=False, say=say)
    status = json.loads(status_path(out, experiment.name).read_text())
    assert (status["state"], status["exit_code"]) == (INTERRUPTED, 130)  # asked, not killed (-9)


@pytest.mark.slow
def test_a_sigterm_to_make_reproduce_stops_the_sweep_like_ctrl_c_and_writes_the_page(tmp_path):
    import signal

    out = tmp_path / "out"
    command = [sys.executable, "-m", "dlfoundations.reproduce", "--quick", "--only", "memorize_digits"]
    command += ["--out", str(out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "DLF_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # the experiment has started: its sweep is running
        if "memorize_digits:" in line:
            break
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, rest[-3000:]
    assert "interrupted; the page shows what finished" in rest and (out / "index.html").exists()
    status = json.loads(status_path(out, "memorize_digits").read_text())
    assert status["state"] == INTERRUPTED and status["exit_code"] not in (-9, None)  # asked to stop, not killed

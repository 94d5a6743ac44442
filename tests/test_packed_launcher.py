"""The packed launcher (hydra/launcher=packed): its plan (padding bound, balanced workers, FLOPs of
conv nets, one-member packs as ordinary jobs), its workers' device pool, and a packed sweep that
summarizes as the one-job-per-process sweep (and relaunches only its unfinished pack)."""

import functools
import shutil

import pytest


def _flops(width: int) -> float:
    from dlfoundations.launch.packed import mlp_flops

    return mlp_flops(width, 40, 2, 10)


def _members(plan) -> list[tuple[int, int]]:
    """(width, seed) of every member of every job of ``plan``."""
    from dlfoundations.config.overrides import override_values

    out = []
    for job in plan.jobs:
        values = override_values(job)
        if "pack_widths" not in values:  # one member: the ordinary job
            out.append((int(values["model.width"]), int(values["seed"])))
            continue
        widths = [int(w) for w in values["pack_widths"].strip("[]").split(",")]
        out += [(w, int(values["seed"]) + k) for w in widths for k in range(int(values["replicas"]))]
    return sorted(out)


def test_the_plan_packs_a_width_by_seed_grid_within_the_padding_bound():
    from dlfoundations.launch.packed import MAX_WASTE, StepCost, plan_packs, split_widths, waste

    grid = [300, 230, 177, 135, 104, 80, 61, 47, 36, 27, 21, 16, 12, 9, 7, 5, 4, 3, 2]
    cost = StepCost(_flops)
    packs = split_widths(grid, cost.waste)  # one seed
    assert sorted(w for p in packs for w in p) == sorted(grid)  # every width once
    assert all(cost.waste(p) <= MAX_WASTE for p in packs)  # padding: at most 25% of a pack's step time
    assert packs == [[300, 230], [177, 135, 104], [80, 61, 47, 36, 27, 21, 16], [12, 9, 7, 5, 4, 3, 2]]
    # Where a step is compute-bound the time rule is the FLOP rule; at the small widths a step's
    # time is its fixed costs and padding to width 12 costs 2% of it (though 53% of the FLOPs).
    assert cost.waste([300, 230]) == pytest.approx(waste([300, 230], _flops), abs=0.06)
    assert cost.waste([12, 9, 7, 5, 4, 3, 2]) < 0.03 and waste([12, 9, 7, 5, 4, 3, 2], _flops) > 0.5
    jobs = [["experiment=x", f"model.width={w}", f"seed={s}"] for w in (2, 3, 47) for s in (0, 1, 2)]
    plan = plan_packs(jobs, lambda overrides: cost)  # 47, 3 and 2 x 3 seeds: 16% of the step time padded
    assert sorted(map(sorted, plan.jobs)) == [sorted(["experiment=x", "seed=0", "replicas=3", "pack_widths=[47,3,2]"])]
    wide = plan_packs([[f"model.width={w}", "seed=0"] for w in (300, 104)], lambda overrides: cost)
    assert len(wide.jobs) == 2  # 300 with 104: 53% of the step time on padding, not packed
    assert plan.costs == sorted(plan.costs, reverse=True)  # costliest first
    # Not packed, each with its reason: gaps in the seeds, another model.
    gaps = plan_packs([[f"model.width={w}", f"seed={s}"] for w in (2, 7) for s in (0, 2)], lambda o: StepCost(_flops))
    assert len(gaps.jobs) == 4 and all("not a full grid of consecutive seeds" in line for line in gaps.lines)
    other = plan_packs([["model.width=2", "seed=0"], ["model.width=7", "seed=0"]], lambda o: "model X is not an MLP")
    assert len(other.jobs) == 2 and all(line.endswith("model X is not an MLP") for line in other.lines)


def test_the_plan_balances_the_workers_by_cutting_the_costliest_pack():
    from dlfoundations.launch.packed import Pack, StepCost, makespan, plan_packs, split_widths

    grid = [300, 230, 177, 135, 104, 80, 61, 47, 36, 27, 21, 16, 12, 9, 7, 5, 4, 3, 2]
    jobs = [[f"model.width={w}", f"seed={s}"] for w in grid for s in range(5)]
    cost = StepCost(_flops)
    one = plan_packs(jobs, lambda o: cost, workers=1)
    two = plan_packs(jobs, lambda o: cost, workers=2)
    assert _members(one) == _members(two) == sorted((w, s) for w in grid for s in range(5))  # each job once
    cut = [Pack(tuple(p), 0, 5) for p in split_widths(grid, functools.partial(cost.waste, seeds=5))]  # the bound's
    assert sum(one.costs) <= sum(map(cost, cut))  # one worker: a cut only where it saves work (padding)
    # Two workers: the padding bound's [300, 230] x 5 seeds alone is more than half of all the work
    # (it would set the wall); the plan cuts it: the busier worker carries at most 51%.
    assert makespan([cost(p) for p in cut], 2) / sum(map(cost, cut)) > 0.5
    assert makespan(two.costs, 2) / sum(two.costs) <= 0.51
    assert makespan(two.costs, 2) < makespan([cost(p) for p in cut], 2)


def test_a_one_member_pack_is_launched_as_its_ordinary_job():
    from dlfoundations.launch.packed import StepCost, plan_packs

    plan = plan_packs([[f"model.width={w}", "seed=0"] for w in (300, 230, 2, 3)], lambda o: StepCost(_flops), 2)
    assert _members(plan) == [(2, 0), (3, 0), (230, 0), (300, 0)]
    assert ["model.width=300", "seed=0"] in plan.jobs  # widest alone: no pack_widths=[300] with replicas=1


def test_the_plan_counts_a_conv_nets_flops_and_packs_no_widths_of_a_net_with_dropout(tmp_path):
    from dlfoundations.config.compose import compose_config
    from dlfoundations.launch.packed import StepCost, forward_flops, plan_packs

    cnn = compose_config(["data=mnist1d", "model=cnn1d"], str(tmp_path))
    flops, dropout = forward_flops(cnn.model, list(cnn.data.input_shape))
    # Conv1d(1,c,5) at 19 positions, Conv1d(c,c,3) at 10 and 5, Linear(5c, 10): 45c^2 + 145c multiply-adds.
    assert [flops(c) for c in (1, 8, 64)] == [45 * c * c + 145 * c for c in (1, 8, 64)] and not dropout
    alexnet = compose_config(["data=mnist", "model=alexnet"], str(tmp_path))
    assert forward_flops(alexnet.model, list(alexnet.data.input_shape))[1]  # it has dropout
    jobs = [[f"model.width={w}", f"seed={s}"] for w in (2, 3) for s in (0, 1)]
    plan = plan_packs(jobs, lambda o: StepCost(flops, pad=False))
    assert _members(plan) == sorted((w, s) for w in (2, 3) for s in (0, 1))
    assert all("pack_widths=[3]" in j or "pack_widths=[2]" in j for j in plan.jobs)  # seeds stacked, widths not


@pytest.mark.slow
def test_a_packed_sweep_summarizes_as_the_one_job_per_process_sweep(tmp_path):
    import csv

    from tests.helpers import run_cli

    common = [
        "-m",
        "experiment=double_descent",
        "model.width=2,3,16",
        "seed=0,1",
        "data.train_size=300",
        "data.test_size=200",
        "trainer.max_epochs=3",
        "trainer.precision=64-true",
        "print_config=false",
        f"paths.log_dir={tmp_path}",
    ]
    # The plan, printed and nothing launched: one pack of widths [16, 3, 2] per seed (padding 2 and 3
    # to 16 costs little step time: a small MLP's step is mostly fixed cost).
    dry = run_cli(
        [*common, "hydra/launcher=packed", "hydra.launcher.dry_run=true", f"hydra.sweep.dir={tmp_path / 'dry'}"],
        tmp_path,
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "packed launcher, dry run: nothing launched" in dry.stdout
    assert "widths [16,3,2] x seed 0 " in dry.stdout and "widths [16,3,2] x seed 1 " in dry.stdout, dry.stdout
    assert not [p for p in (tmp_path / "dry").glob("*") if p.name.isdigit()]  # no job ran
    tables = {}
    for launcher in ("basic", "packed"):
        sweep = tmp_path / launcher
        proc = run_cli([*common, f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(sweep / "summary_agg.csv") as f:
            tables[launcher] = {row["model.width"]: row for row in csv.DictReader(f)}
        if launcher == "packed":
            assert "packed launcher: 6 sweep jobs as 2 jobs" in proc.stdout + proc.stderr  # [16, 3, 2] x 1 seed, twice
            assert len([p for p in sweep.iterdir() if p.name.isdigit()]) < 6  # fewer jobs than runs
    # Seed 1's pack as if killed after its last checkpoint: a relaunch with skip_finished runs it
    # alone (from that checkpoint) and leaves seed 0's finished pack as it is.
    pack = next(
        p.parent.parent for p in (tmp_path / "packed").glob("*/.hydra/overrides.yaml") if "- seed=1\n" in p.read_text()
    )
    (pack / "replicas.json").unlink()
    for member in pack.glob("replica_*"):
        shutil.rmtree(member)
    sweep = tmp_path / "packed"
    proc = run_cli([*common, "hydra/launcher=packed", f"hydra.sweep.dir={sweep}", "skip_finished=true"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert out.count("not running it again") == 1 and out.count("resuming this job from its own") == 1, out[-3000:]
    with open(sweep / "summary_agg.csv") as f:
        again = {row["model.width"]: row for row in csv.DictReader(f)}
    for width, row in tables["packed"].items():
        for column in ("count", "test/err", "test/loss", "train_eval/err", "num_params"):
            assert again[width][column] == row[column], (width, column)
    assert tables["packed"].keys() == tables["basic"].keys() == {"2", "3", "16"}
    for width, row in tables["basic"].items():
        assert tables["packed"][width]["count"] == row["count"] == "2"
        for column in ("test/err", "train_eval/err", "num_params"):
            assert abs(float(tables["packed"][width][column]) - float(row[column])) <= 1e-6, (width, column)


def test_the_packed_launchers_jobs_get_the_local_pools_threads_and_gpus():
    # devices.sweep_job_device pins threads (and GPUs) in the local pool's workers; the packed
    # launcher's workers are that pool's (they ran with every core's threads each when it was not).
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    from dlfoundations.devices import is_local_pool

    assert is_local_pool("hydra_plugins.dlfoundations_launcher.PackedLauncher")
    assert is_local_pool("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher")
    assert not is_local_pool("hydra._internal.core_plugins.basic_launcher.BasicLauncher")
    assert not is_local_pool("no.such.Launcher")
    assert any(c.__name__ == "PackedLauncher" for c in Plugins.instance().discover(Launcher))

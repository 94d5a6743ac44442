"""The packed launcher (``hydra/launcher=packed``): a multirun's jobs that differ only in
``model.width`` and ``seed`` of an MLP are trained as a few packs, one job each (``pack_widths``
widths x ``replicas`` seeds, see dlfoundations.replicas), on the local pool's workers.

:func:`plan_packs` groups the jobs: those equal in every other override form a group; a group whose
jobs make a full grid of widths x consecutive seeds is cut, widest first, into packs of widths whose
zero-padding wastes at most :data:`MAX_WASTE` of a pack's estimated step time; the packs go to the workers
costliest first. Everything else (another model, a sweep over something else too, seeds with gaps,
``replicas`` already set) runs as the ordinary jobs it was, and the plan says so in one line.
"""

import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from hydra.core.utils import JobReturn

from dlfoundations.config.overrides import override_key, override_values, without_keys
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

log = logging.getLogger(__name__)
MAX_WASTE = 0.25  # of a pack's estimated step time spent on padded units


@dataclass(frozen=True)
class Pack:
    """One job of the plan: ``widths`` (widest first) x ``seeds`` consecutive seeds from ``seed``."""

    widths: tuple[int, ...]
    seed: int
    seeds: int
    rest: tuple[str, ...] = ()  # the group's other overrides

    @property
    def members(self) -> int:
        return len(self.widths) * self.seeds

    def overrides(self) -> list[str]:
        if self.members == 1:  # one model: the ordinary job it stands for
            return [*self.rest, f"model.width={self.widths[0]}", f"seed={self.seed}"]
        listed = ",".join(map(str, self.widths))
        return [*self.rest, f"seed={self.seed}", f"replicas={self.seeds}", f"pack_widths=[{listed}]"]


# Seconds per optimizer step of a pack on one CPU core, measured on the 2-core machine (2026-12-04,
# MNIST-1D MLP, batch 100, one thread; benchmarks/RESULTS.md): Lightning's and the task's per-step
# cost (0.58 ms at width 2, one model), each member's own share of it (52-65 us: its rows gathered,
# its small matrix products), and the stacked matrix products' rate (34 GFLOP/s at width 300).
# A guide for cutting and balancing packs only: a wrong figure costs wall time, never a number.
STEP_SECONDS, MEMBER_SECONDS, FLOP_RATE = 5.8e-4, 6.0e-5, 3.4e10


@dataclass(frozen=True)
class StepCost:
    """A pack's estimated seconds per optimizer step (see :data:`STEP_SECONDS`)."""

    flops: Callable[[int], float]  # forward FLOPs of one member per sample, by width
    batch: int = 100
    pad: bool = True  # False: widths are not zero-padded together (dropout), only seeds are stacked

    def member(self, width: int) -> float:
        """One member's share of a step at ``width``: its own cost and its forward and backward."""
        return MEMBER_SECONDS + 3 * self.batch * self.flops(width) / FLOP_RATE

    def __call__(self, pack: Pack) -> float:
        return STEP_SECONDS + pack.members * self.member(max(pack.widths))

    def waste(self, widths: Sequence[int], seeds: int = 1) -> float:
        """The share of a pack's estimated step time spent on padding: its time against the same
        members' time at their own widths. Where the products are compute-bound this is the share
        of padded FLOPs; at the small widths, where a step's time is its fixed costs, padding
        costs next to nothing and packs grow (benchmarks/RESULTS.md, 2026-12-07: one seed's sweep
        in 9 packs cut at 25% of FLOPs took 71.0 s, in the 4 packs of this rule 58.7 s)."""
        actual = STEP_SECONDS + seeds * len(widths) * self.member(max(widths))
        useful = STEP_SECONDS + seeds * sum(self.member(w) for w in widths)
        return 1 - useful / actual


@dataclass
class Plan:
    jobs: list[list[str]] = field(default_factory=list)  # the overrides of each job to launch
    costs: list[float] = field(default_factory=list)  # estimated seconds per step (0: not a pack)
    lines: list[str] = field(default_factory=list)  # what was packed, what was not and why


def mlp_flops(width: int, in_features: int, depth: int, classes: int) -> float:
    return float(in_features * width + (depth - 1) * width * width + width * classes)


def split_widths(
    widths: Sequence[int], waste_of: Callable[[list[int]], float], max_waste: float = MAX_WASTE
) -> list[list[int]]:
    """``widths``, widest first, cut into packs: a width joins the current pack while the pack's
    padding (every member computed at the pack's widest) wastes at most ``max_waste`` by
    ``waste_of`` (:meth:`StepCost.waste`: of its estimated step time; :func:`waste`: of its FLOPs)."""
    packs: list[list[int]] = []
    for w in sorted(widths, reverse=True):
        if packs:
            pack = [*packs[-1], w]
            if waste_of(pack) <= max_waste:
                packs[-1] = pack
                continue
        packs.append([w])
    return packs


def waste(pack: Sequence[int], flops: Callable[[int], float]) -> float:
    """The share of a pack's FLOPs spent on padding."""
    return 1 - sum(flops(m) for m in pack) / (len(pack) * flops(max(pack)))


def makespan(costs: Sequence[float], workers: int) -> float:
    """The busiest worker's load when ``costs`` go, costliest first, each to the least loaded
    worker (as the pool hands them out)."""
    loads = [0.0] * max(1, workers)
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def halves(pack: Pack) -> list[tuple[Pack, Pack]]:
    """The ways to cut ``pack`` in two: its seeds in halves, its widths in halves."""
    out = []
    if pack.seeds > 1:
        h = pack.seeds // 2
        out.append((replace(pack, seeds=h), replace(pack, seed=pack.seed + h, seeds=pack.seeds - h)))
    if len(pack.widths) > 1:
        h = len(pack.widths) // 2
        out.append((replace(pack, widths=pack.widths[:h]), replace(pack, widths=pack.widths[h:])))
    return out


def balance(packs: list[Pack], cost: Callable[[Pack], float], workers: int, others: Sequence[float] = ()) -> list[Pack]:
    """Cut a pack in two (by seeds or by widths: whichever cut of whichever pack shortens the
    busiest worker's load most) while that shortens it: one pack that alone outlasts the rest of
    the sweep would set its wall time, and big packs leave the workers unevenly loaded."""
    while packs:
        now = makespan([*map(cost, packs), *others], workers)
        options = [[*packs[:i], a, b, *packs[i + 1 :]] for i, pack in enumerate(packs) for a, b in halves(pack)]
        if not options:
            break
        best = min(options, key=lambda ps: makespan([*map(cost, ps), *others], workers))
        if makespan([*map(cost, best), *others], workers) >= now * (1 - 1e-9):
            break
        packs = best
    return packs


def plan_packs(
    job_overrides: Sequence[Sequence[str]],
    packable: Callable[[list[str]], StepCost | str],
    workers: int = 1,
) -> Plan:
    """The jobs to launch for ``job_overrides`` on ``workers`` processes. ``packable(overrides)``
    gives, for a group's first job, its packs' :class:`StepCost`, or the reason (a sentence) why its
    model cannot be packed."""
    groups: dict[tuple[str, ...], list[tuple[int, int, list[str]]]] = {}
    plan, ordinary = Plan(), []
    for overrides in job_overrides:
        values = override_values(overrides)
        width, seed = values.get("model.width", ""), values.get("seed", "")
        if not (width.isdigit() and seed.isdigit()) or {"pack_widths", "replicas"} & {
            override_key(o) for o in overrides
        }:
            ordinary.append((list(overrides), "it sets no model.width and seed, or sets replicas/pack_widths"))
            continue
        rest = tuple(sorted(without_keys(overrides, ["model.width", "seed"])))
        groups.setdefault(rest, []).append((int(width), int(seed), list(overrides)))
    packed: list[tuple[Pack, StepCost]] = []
    for rest, jobs in groups.items():
        widths, seeds = sorted({w for w, _, _ in jobs}), sorted({s for _, s, _ in jobs})
        why = packable(list(jobs[0][2]))
        if isinstance(why, str):
            ordinary += [(o, why) for _, _, o in jobs]
            continue
        if len(jobs) != len(widths) * len(seeds) or seeds != list(range(seeds[0], seeds[0] + len(seeds))):
            ordinary += [(o, "its widths x seeds are not a full grid of consecutive seeds") for _, _, o in jobs]
            continue
        cut = (
            split_widths(widths, functools.partial(why.waste, seeds=len(seeds)))
            if why.pad
            else [[w] for w in sorted(widths, reverse=True)]
        )
        packs = [Pack(tuple(p), seeds[0], len(seeds), rest) for p in cut]
        packed += [(p, why) for p in balance(packs, why, workers)]
    total = sum(cost(p) for p, cost in packed) or 1.0
    for pack, cost in packed:
        plan.jobs.append(pack.overrides())
        plan.costs.append(cost(pack))
        which = f"seed {pack.seed}" if pack.seeds == 1 else f"seeds {pack.seed}..{pack.seed + pack.seeds - 1}"
        plan.lines.append(
            f"pack of {pack.members} jobs: widths [{','.join(map(str, pack.widths))}] x {which} (padding "
            f"{cost.waste(pack.widths, pack.seeds):.0%} of its step time, {waste(pack.widths, cost.flops):.0%} of "
            f"its FLOPs; {cost(pack) / total:.0%} of the estimated work)"
            + (f" with {' '.join(pack.rest)}" if len(groups) > 1 and pack.rest else "")
        )
    for overrides, reason in ordinary:
        plan.jobs.append(overrides)
        plan.costs.append(0.0)
        plan.lines.append(f"not packed: {' '.join(overrides)}: {reason}")
    order = sorted(range(len(plan.jobs)), key=lambda i: -plan.costs[i])  # costliest first: workers finish together
    plan.jobs, plan.costs, plan.lines = (
        [plan.jobs[i] for i in order],
        [plan.costs[i] for i in order],
        [plan.lines[i] for i in order],
    )
    return plan


class PackedLauncher(JoblibLauncher):
    """hydra-joblib-launcher's local pool, launching the packs of :func:`plan_packs` (one job each)
    instead of the sweep's jobs. Summaries read a pack's members as the jobs they stand for.
    ``hydra.launcher.dry_run=true`` prints the plan and launches nothing."""

    def __init__(self, dry_run: bool = False, **joblib: Any) -> None:
        super().__init__(**joblib)
        self.dry_run = dry_run

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        workers = int(self.joblib.get("n_jobs") or 1)
        plan = plan_packs(job_overrides, self._packable, workers if workers > 0 else os.cpu_count() or 1)
        log.info("packed launcher: %d sweep jobs as %d jobs on %d workers", len(job_overrides), len(plan.jobs), workers)
        for line in plan.lines:
            log.info("  %s", line)
        if self.dry_run:
            print("\n".join(["packed launcher, dry run: nothing launched", *plan.lines]))
            raise SystemExit(0)
        return super().launch(plan.jobs, initial_job_idx)

    def _packable(self, overrides: list[str]) -> StepCost | str:
        assert self.config is not None and self.hydra_context is not None
        cfg: Any = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        model: Any = cfg.get("model") or {}
        if "width" not in model:
            return f"model {model.get('_target_')} has no width"
        if cfg.get("pack_widths") or cfg.get("replicas", 1) != 1:
            return "the config sets replicas or pack_widths itself"
        batch = int(cfg.data.get("batch_size", 100))
        if str(model.get("_target_", "")).endswith(".MLP"):
            if model.get("activation", "relu") not in ("relu", "tanh"):
                return f"model.activation={model.activation} is not 0 at 0 (padded units would not stay silent)"
            in_features, depth, classes = int(model.in_features), int(model.get("depth", 2)), int(model.num_classes)
            return StepCost(lambda w: mlp_flops(w, in_features, depth, classes), batch)
        shape = cfg.data.get("input_shape")
        if not shape:
            return "data.input_shape is not set (a pack's FLOPs are counted on it)"
        try:
            flops, dropout = forward_flops(model, list(shape))
        except Exception as err:  # the model cannot be built here: the jobs say why when they run
            return f"its FLOPs could not be counted ({type(err).__name__}: {err})".splitlines()[0]
        return StepCost(flops, batch, pad=not dropout)


def forward_flops(model: Any, shape: list[int]) -> tuple[Callable[[int], float], bool]:
    """Multiply-adds of one sample's forward pass of ``model`` at a width (counted by torch's
    FlopCounterMode on the meta device: nothing allocated), and whether the net has dropout."""
    from torch.utils.flop_counter import FlopCounterMode

    from dlfoundations.config.objects import instantiate
    from dlfoundations.replicas.nets import DROPOUT

    def build(width: int) -> torch.nn.Module:
        with torch.device("meta"):
            return instantiate(model, "model", width=width)

    @functools.cache
    def flops(width: int) -> float:
        net = build(width)
        with FlopCounterMode(display=False) as counter, torch.no_grad(), torch.device("meta"):
            net(torch.zeros(1, *shape))
        return counter.get_total_flops() / 2  # it counts a multiply-add as 2

    return flops, any(isinstance(m, DROPOUT) for m in build(int(model.width)).modules())

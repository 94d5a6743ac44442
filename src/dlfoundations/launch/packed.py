"""The packed launcher (``hydra/launcher=packed``): a multirun's jobs that differ only in
``model.width`` and ``seed`` of an MLP are trained as a few packs, one job each (``pack_widths``
widths x ``replicas`` seeds, see dlfoundations.replicas), on the local pool's workers.

:func:`plan_packs` groups the jobs: those equal in every other override form a group; a group whose
jobs make a full grid of widths x consecutive seeds is cut, widest first, into packs of widths whose
zero-padding wastes at most :data:`MAX_WASTE` of a pack's FLOPs; the packs go to the workers
costliest first. Everything else (another model, a sweep over something else too, seeds with gaps,
``replicas`` already set) runs as the ordinary jobs it was, and the plan says so in one line.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.utils import JobReturn

from dlfoundations.config.overrides import override_key, override_values, without_keys
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

log = logging.getLogger(__name__)
MAX_WASTE = 0.25  # of a pack's FLOPs spent on padded units


@dataclass
class Plan:
    jobs: list[list[str]] = field(default_factory=list)  # the overrides of each job to launch
    costs: list[float] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what was packed, what was not and why


def mlp_flops(width: int, in_features: int, depth: int, classes: int) -> float:
    return float(in_features * width + (depth - 1) * width * width + width * classes)


def split_widths(widths: Sequence[int], flops: Callable[[int], float], max_waste: float = MAX_WASTE) -> list[list[int]]:
    """``widths``, widest first, cut into packs: a width joins the current pack while the pack's
    padding (every member computed at the pack's widest) wastes at most ``max_waste`` of its FLOPs."""
    packs: list[list[int]] = []
    for w in sorted(widths, reverse=True):
        if packs:
            pack = [*packs[-1], w]
            if 1 - sum(flops(m) for m in pack) / (len(pack) * flops(pack[0])) <= max_waste:
                packs[-1] = pack
                continue
        packs.append([w])
    return packs


def waste(pack: Sequence[int], flops: Callable[[int], float]) -> float:
    return 1 - sum(flops(m) for m in pack) / (len(pack) * flops(max(pack)))


def plan_packs(
    job_overrides: Sequence[Sequence[str]], packable: Callable[[list[str]], Callable[[int], float] | str]
) -> Plan:
    """The jobs to launch for ``job_overrides``. ``packable(overrides)`` gives, for a group's first
    job, the FLOPs of a member by width, or the reason (a sentence) why its model cannot be packed."""
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
    for rest, jobs in groups.items():
        widths, seeds = sorted({w for w, _, _ in jobs}), sorted({s for _, s, _ in jobs})
        why = packable(list(jobs[0][2]))
        if isinstance(why, str):
            ordinary += [(o, why) for _, _, o in jobs]
            continue
        if len(jobs) != len(widths) * len(seeds) or seeds != list(range(seeds[0], seeds[0] + len(seeds))):
            ordinary += [(o, "its widths x seeds are not a full grid of consecutive seeds") for _, _, o in jobs]
            continue
        for pack in split_widths(widths, why):
            listed = ",".join(map(str, pack))
            plan.jobs.append([*rest, f"seed={seeds[0]}", f"replicas={len(seeds)}", f"pack_widths=[{listed}]"])
            plan.costs.append(sum(why(w) for w in pack) * len(seeds))
            plan.lines.append(
                f"pack of {len(pack) * len(seeds)} jobs: widths [{listed}] x seeds {seeds[0]}..{seeds[-1]}"
                f" (padding {waste(pack, why):.0%} of its FLOPs){' with ' + ' '.join(rest) if rest else ''}"
            )
    for overrides, reason in ordinary:
        plan.jobs.append(overrides)
        plan.costs.append(0.0)
        plan.lines.append(f"not packed: {' '.join(overrides)}: {reason}")
    order = sorted(range(len(plan.jobs)), key=lambda i: -plan.costs[i])  # costliest first: workers finish together
    plan.jobs, plan.costs = [plan.jobs[i] for i in order], [plan.costs[i] for i in order]
    return plan


class PackedLauncher(JoblibLauncher):
    """hydra-joblib-launcher's local pool, launching the packs of :func:`plan_packs` (one job each)
    instead of the sweep's jobs. Summaries read a pack's members as the jobs they stand for."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        plan = plan_packs(job_overrides, self._packable)
        log.info("packed launcher: %d sweep jobs as %d jobs", len(job_overrides), len(plan.jobs))
        for line in plan.lines:
            log.info("  %s", line)
        return super().launch(plan.jobs, initial_job_idx)

    def _packable(self, overrides: list[str]) -> Callable[[int], float] | str:
        assert self.config is not None and self.hydra_context is not None
        cfg: Any = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        model: Any = cfg.get("model") or {}
        if not str(model.get("_target_", "")).endswith(".MLP"):
            return f"model {model.get('_target_')} is not an MLP (only MLP widths are zero-padded into one stack)"
        if model.get("activation", "relu") not in ("relu", "tanh"):
            return f"model.activation={model.activation} is not 0 at 0 (padded units would not stay silent)"
        if cfg.get("pack_widths") or cfg.get("replicas", 1) != 1:
            return "the config sets replicas or pack_widths itself"
        in_features, depth, classes = int(model.in_features), int(model.get("depth", 2)), int(model.num_classes)
        return lambda w: mlp_flops(w, in_features, depth, classes)

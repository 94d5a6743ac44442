"""The issue's hand-written packed prototype, a baseline of ``benchmarks.packs --part packed``: plain
PyTorch, the seeds of each width stacked and the widths in 5 groups, each zero-padded to its widest
member ({2..16}, {21..36}, {47..80}, {104..177}, {230, 300}), forward and backward by
``torch.baddbmm``, SGD with momentum, the groups on 2 processes, largest first. Each member starts
from its separate run's data, labels, initial weights and shuffles (built by the project's configs
under its seed), so its first-epoch loss can be compared with the project's packs.
"""

import multiprocessing as mp
import sys
import tempfile
import time

# The hand-written prototype: 5 groups of widths, each zero-padded to its widest member.
PROTOTYPE_GROUPS = [[300, 230], [177, 135, 104], [80, 61, 47], [36, 27, 21], [16, 12, 9, 7, 5, 4, 3, 2]]


def _member(width: int, seed: int, epochs: int, data_dir: str):
    """A separate run's data splits and freshly initialised net, built as the project builds them."""
    import hydra
    import torch

    from dlfoundations.config.compose import compose_config
    from dlfoundations.seeding import seed_run

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            "experiment=double_descent",
            f"model.width={width}",
            f"seed={seed}",
            f"trainer.max_epochs={epochs}",
        ]
        cfg = compose_config(overrides, tmp, data_dir)
    seed_run(cfg.seed)
    dm = hydra.utils.instantiate(cfg.data)  # its setup draws from its own streams, not the global RNG
    dm.setup()
    return cfg, dm.splits, hydra.utils.instantiate(cfg.model)


def _hand_pack_job(args: tuple[list[int], list[int], int, str]) -> tuple[list[int], float, dict]:
    """One group of the prototype: ``widths`` x ``seeds`` MLPs zero-padded to the widest, trained by
    a plain loop of ``torch.baddbmm``; returns (widths, fit seconds, {(width, seed): first-epoch loss})."""
    widths, seeds, epochs, data_dir = args
    import torch
    import torch.nn.functional as F
    from torch import nn

    from dlfoundations.data.loader import EpochPermutation

    members = [(w, s) for w in widths for s in seeds]
    labels, layers = {}, []
    for w, s in members:
        cfg, splits, net = _member(w, s, epochs, data_dir)
        x, labels[s] = splits.x_train, splits.y_train
        layers.append([(m.weight.detach(), m.bias.detach()) for m in net.modules() if isinstance(m, nn.Linear)])
    widest, classes = max(widths), layers[0][-1][0].shape[0]
    params = []
    for i, (rows, cols) in enumerate([(widest, x.shape[1]), (widest, widest), (classes, widest)]):
        weight, bias = torch.zeros(len(members), rows, cols), torch.zeros(len(members), rows)
        for m, member in enumerate(layers):
            given_w, given_b = member[i]
            weight[m, : given_w.shape[0], : given_w.shape[1]], bias[m, : given_b.shape[0]] = given_w, given_b
        params += [weight.requires_grad_(), bias.requires_grad_()]
    o = cfg.optimizer
    opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    seed_of = torch.tensor([seeds.index(s) for _, s in members])
    member_labels = torch.stack([labels[s] for s in seeds])[seed_of]  # [members, n]
    n, batch = len(x), int(cfg.data.batch_size)
    w1, b1, w2, b2, w3, b3 = params
    first: dict = {}
    start = time.perf_counter()
    for epoch in range(epochs):
        orders = []
        for s in seeds:  # each seed's own shuffle of the epoch, as its separate run draws it
            perm = EpochPermutation(n, True, s)
            perm.set_epoch(epoch)
            orders.append(perm.indices())
        order = torch.stack(orders)[seed_of]  # [members, n]
        loss_sum = torch.zeros(len(members))
        for step in range(n // batch):
            index = order[:, step * batch : (step + 1) * batch]
            xb, yb = x[index], member_labels.gather(1, index)
            h = torch.relu(torch.baddbmm(b1.unsqueeze(1), xb, w1.transpose(1, 2)))
            h = torch.relu(torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2)))
            logits = torch.baddbmm(b3.unsqueeze(1), h, w3.transpose(1, 2))
            losses = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").mean(1)
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
            loss_sum += losses.detach()
        if epoch == 0:
            first = {members[m]: float(v) for m, v in enumerate(loss_sum / (n // batch))}
    return widths, time.perf_counter() - start, first


def hand_packed_sweep(seeds: list[int], epochs: int, data_dir: str) -> tuple[float, float, dict]:
    """The prototype's groups on 2 processes, largest first: (wall, summed fit seconds, first losses)."""
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(2, maxtasksperchild=1) as pool:
        jobs = pool.map(_hand_pack_job, [(g, seeds, epochs, data_dir) for g in PROTOTYPE_GROUPS], chunksize=1)
    wall = time.perf_counter() - start
    first = {key: value for _, _, losses in jobs for key, value in losses.items()}
    for widths, fit, _ in jobs:
        print(f"  prototype group {widths} x {len(seeds)} seeds: fit {fit:.1f} s", file=sys.stderr)
    return wall, sum(fit for _, fit, _ in jobs), first

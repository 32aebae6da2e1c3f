"""Golden fixture optim.txt: torch.optim SGD / Adam / AdamW trajectories, clip_grad_norm_ and LR schedules.

Optimizers: two parameters p0 (3,5) and p1 (7,) start from `p0`, `p1`; step s (0..4) uses the fixed gradients
`g<s>.p<k>`. For each configuration C the fixture holds its hyperparameters `C.hparams` and the parameters after
every step, `C.step<s>.p<k>`, plus the final optimizer state `C.state.p<k>.<buffer>` where it has one.
  SGD hparams:  [lr, momentum, dampening, weight_decay, nesterov]
  Adam hparams: [lr, beta1, beta2, eps, weight_decay]           (AdamW: the same, decoupled decay)
  Group configurations (`*_groups`) put p0 and p1 in two groups; `C.group<k>` = [lr, weight_decay].
Hyperparameters are rounded to float32 before torch sees them, so graft (float32 hyperparameters) and torch
use the same values and only the rounding of the arithmetic differs.

clip_grad_norm_: parameters q0 (4,3), q1 (5,) with gradients `clip.q<k>.grad` and q2 without a gradient;
`clip.norm` is the returned total norm and `clip.max<M>.q<k>` the gradients after clipping to max_norm M.

Schedules: an SGD optimizer with two groups (base lrs `sched.base`); `<schedule>.lrs` (steps+1, 2) holds the
group lrs after construction and after each scheduler.step(). The cosine schedules run torch's LambdaLR with
the formula documented in core/lr_schedule.h; `<schedule>.args` holds its arguments.
"""
import math
import os

import numpy as np
import torch

import golden_io

STEPS = 5


def f32(x):
    return float(np.float32(x))


SGD_CONFIGS = {
    # name: (lr, momentum, dampening, weight_decay, nesterov)
    "sgd_plain": (0.1, 0.0, 0.0, 0.0, False),
    "sgd_plain_wd": (0.1, 0.0, 0.0, 0.05, False),
    "sgd_momentum": (0.1, 0.9, 0.0, 0.0, False),
    "sgd_nesterov": (0.1, 0.9, 0.0, 0.01, True),
    "sgd_dampening": (0.05, 0.9, 0.3, 0.05, False),
}
ADAM_CONFIGS = {
    # name: (class, lr, beta1, beta2, eps, weight_decay)
    "adam": (torch.optim.Adam, 0.01, 0.9, 0.999, 1e-8, 0.0),
    "adam_wd": (torch.optim.Adam, 0.01, 0.8, 0.99, 1e-6, 0.1),
    "adamw": (torch.optim.AdamW, 0.01, 0.9, 0.999, 1e-8, 0.1),
}
GROUP_CONFIGS = {
    # name: (kind, hparams as above, [(lr, wd) of the group of p0, of p1])
    "sgd_groups": ("sgd", (0.0, 0.9, 0.0, 0.0, False), [(0.1, 0.01), (0.02, 0.0)]),
    "adamw_groups": ("adamw", (0.0, 0.9, 0.999, 1e-8, 0.0), [(0.01, 0.1), (0.003, 0.0)]),
}


def cosine_factor(step, warmup, total, min_ratio, start):
    """The CosineWithWarmup formula of core/lr_schedule.h."""
    if step < warmup:
        return start + (1.0 - start) * step / warmup
    if step > total:
        return min_ratio
    progress = (step - warmup) / (total - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make(outdir):
    gen = torch.Generator().manual_seed(20240612)
    arrays = {}

    def randn(*shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    init = [randn(3, 5), randn(7)]
    grads = [[randn(3, 5), randn(7)] for _ in range(STEPS)]
    for k, p in enumerate(init):
        arrays[f"p{k}"] = p.numpy()
    for s, gs in enumerate(grads):
        for k, g in enumerate(gs):
            arrays[f"g{s}.p{k}"] = g.numpy()

    def run(name, opt, params):
        for s in range(STEPS):
            for p, g in zip(params, grads[s]):
                p.grad = g.clone()
            opt.step()
            for k, p in enumerate(params):
                arrays[f"{name}.step{s}.p{k}"] = p.detach().numpy().copy()
        for k, p in enumerate(params):
            for buffer, value in opt.state[p].items():
                if torch.is_tensor(value) and value.shape == p.shape:
                    arrays[f"{name}.state.p{k}.{buffer}"] = value.numpy().copy()

    def fresh():
        return [p.clone().requires_grad_(True) for p in init]

    for name, (lr, momentum, dampening, wd, nesterov) in SGD_CONFIGS.items():
        params = fresh()
        opt = torch.optim.SGD(params, lr=f32(lr), momentum=f32(momentum), dampening=f32(dampening),
                              weight_decay=f32(wd), nesterov=nesterov, foreach=False)
        arrays[f"{name}.hparams"] = [lr, momentum, dampening, wd, float(nesterov)]
        run(name, opt, params)

    for name, (cls, lr, beta1, beta2, eps, wd) in ADAM_CONFIGS.items():
        params = fresh()
        opt = cls(params, lr=f32(lr), betas=(f32(beta1), f32(beta2)), eps=f32(eps), weight_decay=f32(wd),
                  foreach=False)
        arrays[f"{name}.hparams"] = [lr, beta1, beta2, eps, wd]
        run(name, opt, params)

    for name, (kind, hp, groups) in GROUP_CONFIGS.items():
        params = fresh()
        spec = [{"params": [p], "lr": f32(lr), "weight_decay": f32(wd)} for p, (lr, wd) in zip(params, groups)]
        if kind == "sgd":
            _, momentum, dampening, _, nesterov = hp
            opt = torch.optim.SGD(spec, lr=0.5, momentum=f32(momentum), dampening=f32(dampening),
                                  nesterov=nesterov, foreach=False)
            arrays[f"{name}.hparams"] = [0.0, momentum, dampening, 0.0, float(nesterov)]
        else:
            _, beta1, beta2, eps, _ = hp
            opt = torch.optim.AdamW(spec, betas=(f32(beta1), f32(beta2)), eps=f32(eps), foreach=False)
            arrays[f"{name}.hparams"] = [0.0, beta1, beta2, eps, 0.0]
        for k, (lr, wd) in enumerate(groups):
            arrays[f"{name}.group{k}"] = [lr, wd]
        run(name, opt, params)

    # ---- clip_grad_norm_ ----
    clip_grads = [randn(4, 3), randn(5)]
    for k, g in enumerate(clip_grads):
        arrays[f"clip.q{k}.grad"] = g.numpy()
    for max_norm in (1, 100):
        qs = [torch.zeros(4, 3, requires_grad=True), torch.zeros(5, requires_grad=True),
              torch.zeros(2, 2, requires_grad=True)]
        for q, g in zip(qs, clip_grads):
            q.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(qs, float(max_norm))
        arrays["clip.norm"] = [norm.item()]
        for k in range(2):
            arrays[f"clip.max{max_norm}.q{k}"] = qs[k].grad.numpy().copy()

    # ---- LR schedules ----
    base = [0.1, 0.02]
    arrays["sched.base"] = base

    def schedule_lrs(make_schedule, steps):
        params = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
        opt = torch.optim.SGD([{"params": [params[0]], "lr": f32(base[0])},
                               {"params": [params[1]], "lr": f32(base[1])}], lr=0.1)
        sched = make_schedule(opt)
        lrs = [[g["lr"] for g in opt.param_groups]]
        for _ in range(steps):
            opt.step()
            sched.step()
            lrs.append([g["lr"] for g in opt.param_groups])
        return lrs

    sl = torch.optim.lr_scheduler
    arrays["steplr.lrs"] = schedule_lrs(lambda o: sl.StepLR(o, step_size=3, gamma=f32(0.5)), 11)
    arrays["multisteplr.lrs"] = schedule_lrs(lambda o: sl.MultiStepLR(o, milestones=[5, 2, 9, 5], gamma=f32(0.1)), 11)
    for name, args in {"cosine_a": (3, 10, 0.1, 0.0), "cosine_b": (4, 9, 0.2, 0.25), "cosine_c": (0, 6, 0.0, 0.0)}.items():
        warmup, total, min_ratio, start = args
        m, s0 = f32(min_ratio), f32(start)
        arrays[f"{name}.args"] = list(args)
        arrays[f"{name}.lrs"] = schedule_lrs(
            lambda o: sl.LambdaLR(o, lambda step: cosine_factor(step, warmup, total, m, s0)), total + 3)

    golden_io.write(os.path.join(outdir, "optim.txt"), arrays)

#!/usr/bin/env python3
"""Writes test/fixtures/optim-torch.json: torch.optim.AdamW and SGD trajectories.

Run with a Python that has torch (e.g. a venv; not needed for the tests, which read the JSON):
    python tools/make-optim-fixtures.py
Each config runs 20 steps on two float32 parameters ([7, 5] and [13]) with seeded random
gradients; the second parameter has no gradient at steps 5 and 11 (so per-parameter step
counts must be kept as torch keeps them). The JSON stores the initial values, every gradient
(null where absent) and the parameters after every step, as float32 values.
"""
import json
import os

import torch

STEPS = 20
CONFIGS = [
    ("adamw-default", "AdamW", {}),
    ("adamw-amsgrad", "AdamW", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}),
    ("adamw-maximize-nodecay", "AdamW", {"lr": 3e-3, "weight_decay": 0.0, "maximize": True}),
    ("sgd-plain", "SGD", {"lr": 0.1}),
    ("sgd-momentum-dampening-wd", "SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-3}),
    ("sgd-nesterov", "SGD", {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    ("sgd-maximize-momentum", "SGD", {"lr": 0.03, "momentum": 0.5, "maximize": True}),
]


def as_list(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def main():
    out = {"torch": torch.__version__, "steps": STEPS, "shapes": [[7, 5], [13]], "configs": []}
    for name, cls, kw in CONFIGS:
        g = torch.Generator().manual_seed(1234)
        params = [torch.nn.Parameter(torch.randn(7, 5, generator=g)), torch.nn.Parameter(torch.randn(13, generator=g))]
        init = [as_list(p) for p in params]
        opt = getattr(torch.optim, cls)(params, foreach=False, **kw)
        grads, traj = [], []
        for step in range(1, STEPS + 1):
            step_grads = []
            for i, p in enumerate(params):
                if i == 1 and step in (5, 11):
                    p.grad = None
                    step_grads.append(None)
                else:
                    gr = torch.randn(p.shape, generator=g)
                    p.grad = gr.clone()
                    step_grads.append(as_list(gr))
            opt.step()
            grads.append(step_grads)
            traj.append([as_list(p) for p in params])
        hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
        out["configs"].append({"name": name, "optimizer": cls, "options": hyper, "init": init, "grads": grads, "params": traj})
    path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "optim-torch.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()

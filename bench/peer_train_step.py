#!/usr/bin/env python3
"""PyTorch + transformers + PEFT side of `kfac-peft bench train-step --peer torch`: one LoRA
step (r on every linear layer of the blocks) of a random-init model of the same shape, on the
same device, in a worker process (one JSON request per line on stdin, one reply per line).

  {"op": "init", "create": config.json dict, "task": "causal-lm"|"sequence-classification",
   "r": 16, "alpha": 32, "dtype": "float32"|"bfloat16", "device": "cpu"|"cuda",
   "checkpointing": bool, "shape": [B, T], "ids": [...], "threads": n}
      -> {"ok": true, "torch": ..., "transformers": ..., "peft": ...}
      The model with PEFT's LoRA and torch's AdamW, the baseline every run times first.
      bfloat16: the base weights are stored in bfloat16 (the adapters stay float32) and the
      step runs under autocast to bfloat16.
  {"op": "kfac"} -> {"ok": true, "kfac": version or null, "kfacMissing": why kfac-pytorch did not import, or null}
      From here on the steps are kfac-pytorch's KFACPreconditioner (factors every step,
      inverses every 10, as ours) with SGD, when it imports; AdamW's steps otherwise.
  {"op": "steps", "n": k} -> {"ok": true, "optimizer": "adamw"|"kfac", "ms": [k step times],
                              "loss": last loss, "peak": peak device bytes (cuda) or null}
Nothing is written to disk (no weights are shared: this side times the same shape, not the same values).
"""
import time

from peer_serve import serve

STATE = {}


def op_init(p):
    import torch
    import transformers
    import peft

    torch.set_num_threads(int(p["threads"]))
    torch.manual_seed(0)
    dev = torch.device(p["device"])
    cfg = transformers.AutoConfig.for_model(**p["create"])
    causal = p["task"] == "causal-lm"
    cls = transformers.AutoModelForCausalLM if causal else transformers.AutoModelForSequenceClassification
    dtype = torch.bfloat16 if p["dtype"] == "bfloat16" else torch.float32
    model = cls.from_config(cfg, torch_dtype=dtype).to(dev)
    if p.get("checkpointing"):
        model.gradient_checkpointing_enable()
    model.train()
    lcfg = peft.LoraConfig(r=int(p["r"]), lora_alpha=float(p["alpha"]), lora_dropout=0.0, target_modules="all-linear",
                           task_type="CAUSAL_LM" if causal else "SEQ_CLS")
    model = peft.get_peft_model(model, lcfg)
    for q in model.parameters():
        if q.requires_grad:
            q.data = q.data.float()
    params = [q for q in model.parameters() if q.requires_grad]
    B, T = p["shape"]
    ids = torch.tensor(p["ids"], dtype=torch.long, device=dev).view(B, T)
    labels = ids if causal else torch.tensor([i % 2 for i in range(B)], dtype=torch.long, device=dev)
    STATE.update(model=model, params=params, opt=torch.optim.AdamW(params, lr=1e-4), precond=None, ids=ids, labels=labels,
                 bf16=dtype == torch.bfloat16, dev=dev)
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def op_kfac(p):
    import torch

    try:
        import kfac  # kfac-pytorch
    except ImportError as e:  # no K-FAC peer here: the steps stay AdamW's
        return {"kfac": None, "kfacMissing": f"{type(e).__name__}: {e}"}
    precond = kfac.preconditioner.KFACPreconditioner(STATE["model"], factor_update_steps=1, inv_update_steps=10, damping=1e-3)
    if STATE["dev"].type == "cuda":
        torch.cuda.reset_peak_memory_stats()  # the K-FAC steps' own peak
    STATE.update(precond=precond, opt=torch.optim.SGD(STATE["params"], lr=1e-4, momentum=0.9))
    return {"kfac": getattr(kfac, "__version__", "unknown"), "kfacMissing": None}


def one_step():
    import torch

    s = STATE
    s["opt"].zero_grad(set_to_none=True)
    with torch.autocast(s["dev"].type, dtype=torch.bfloat16, enabled=s["bf16"]):
        out = s["model"](input_ids=s["ids"], labels=s["labels"])
    out.loss.backward()
    if s["precond"] is not None:
        s["precond"].step()
    s["opt"].step()
    loss = float(out.loss.detach())  # one synchronisation per step, as on our side
    return loss


def op_steps(p):
    import torch

    ms = []
    loss = None
    for _ in range(int(p["n"])):
        t0 = time.perf_counter()
        loss = one_step()
        if STATE["dev"].type == "cuda":
            torch.cuda.synchronize()
        ms.append((time.perf_counter() - t0) * 1e3)
    peak = torch.cuda.max_memory_allocated() if STATE["dev"].type == "cuda" else None
    return {"optimizer": "adamw" if STATE["precond"] is None else "kfac", "ms": ms, "loss": loss, "peak": peak}


def main():
    serve({"init": op_init, "kfac": op_kfac, "steps": op_steps})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch + transformers + PEFT side of `kfac-peft bench step --peer torch`: one training step
of a PEFT method on the same weights, in a worker process (one JSON request per line on stdin,
one JSON reply per line on stdout). Thread count comes from the caller (torch.set_num_threads).

  {"op": "create", "dir": folder, "create": config.json dict, "task": "causal-lm"|
   "sequence-classification"|"seq2seq-lm", "threads": n, "seed": 0}
      -> {"ok": true}
      A model with that config and torch's seeded random weights is written to "dir"
      (safetensors), so that the other side loads the very same weights.
  {"op": "init", "dir": model folder, "create": config.json dict or null, "task": as above,
   "peft_config": PEFT adapter_config.json dict (any PEFT method) or null, "targets": [...],
   "r": 8, "alpha": 16 (LoRA, when there is no peft_config), "optimizer": "adamw"|"kfac",
   "dtype": "float32"|"bfloat16", "ids": [...], "labels": [...], "shape": [B, T],
   "target_shape": [B, Tt] (seq2seq labels) or null, "threads": n, "lr": 1e-4, "seed": 0}
      -> {"ok": true, "torch": ..., "transformers": ..., "peft": ..., "kfac": version or null,
          "trainable": trainable parameter count}
      With "create", the weights are written first as by "create".
  {"op": "steps", "n": k} -> {"ok": true, "ms": [k step times], "loss": last loss}

bench/peer.py also loads this file for its OPS (there are none here); torch is imported lazily.
"""
import time

from peer_serve import serve

STATE = {}


def model_class(task):
    import transformers

    if task == "causal-lm":
        return transformers.AutoModelForCausalLM
    if task == "seq2seq-lm":
        return transformers.AutoModelForSeq2SeqLM
    return transformers.AutoModelForSequenceClassification


def op_create(p):
    import torch
    import transformers

    torch.set_num_threads(int(p["threads"]))
    torch.manual_seed(int(p.get("seed", 0)))
    cfg = transformers.AutoConfig.for_model(**p["create"])
    m = model_class(p["task"]).from_config(cfg)
    m.save_pretrained(p["dir"], safe_serialization=True)
    del m
    return {}


def op_init(p):
    import torch
    import transformers
    import peft

    torch.set_num_threads(int(p["threads"]))
    if p.get("create"):
        op_create(p)
    torch.manual_seed(int(p.get("seed", 0)))
    task = p["task"]
    cls = model_class(task)
    if task == "sequence-classification":
        model = cls.from_pretrained(p["dir"], torch_dtype=torch.float32, num_labels=int(p.get("num_labels", 2)))
    else:
        model = cls.from_pretrained(p["dir"], torch_dtype=torch.float32)
    model.train()
    if task == "seq2seq-lm" and not hasattr(model, "_prepare_encoder_decoder_kwargs_for_generation"):
        # PEFT 0.21's seq2seq wrapper keeps this generation hook, which transformers 5 no longer
        # has; only generate() calls it, so a stand-in lets the training step run.
        model._prepare_encoder_decoder_kwargs_for_generation = None
    if p.get("peft_config"):
        pcfg = peft.get_peft_config(dict(p["peft_config"]))
    else:
        task_type = {"causal-lm": "CAUSAL_LM", "seq2seq-lm": "SEQ_2_SEQ_LM"}.get(task, "SEQ_CLS")
        pcfg = peft.LoraConfig(r=int(p["r"]), lora_alpha=float(p["alpha"]), lora_dropout=0.0, target_modules=list(p["targets"]), task_type=task_type)
    model = peft.get_peft_model(model, pcfg)
    params = [q for q in model.parameters() if q.requires_grad]
    kfac_version = None
    precond = None
    if p["optimizer"] == "kfac":
        import kfac  # kfac-pytorch; an ImportError tells the caller there is no K-FAC peer

        kfac_version = getattr(kfac, "__version__", "unknown")
        precond = kfac.preconditioner.KFACPreconditioner(model, factor_update_steps=1, inv_update_steps=10, damping=1e-3)
    opt = torch.optim.AdamW(params, lr=float(p.get("lr", 1e-4))) if precond is None else torch.optim.SGD(params, lr=float(p.get("lr", 1e-4)), momentum=0.9)
    B, T = p["shape"]
    ids = torch.tensor(p["ids"], dtype=torch.long).view(B, T)
    labels = torch.tensor(p["labels"], dtype=torch.long)
    if task == "causal-lm":
        labels = labels.view(B, T)
    elif task == "seq2seq-lm":
        labels = labels.view(*p["target_shape"])
    STATE.update(model=model, opt=opt, precond=precond, ids=ids, labels=labels, bf16=p["dtype"] == "bfloat16")
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "kfac": kfac_version,
            "trainable": sum(q.numel() for q in params)}


def one_step():
    import torch

    s = STATE
    s["opt"].zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s["bf16"]):
        out = s["model"](input_ids=s["ids"], labels=s["labels"])
    out.loss.backward()
    if s["precond"] is not None:
        s["precond"].step()
    s["opt"].step()
    return float(out.loss.detach())


def op_steps(p):
    ms = []
    loss = None
    for _ in range(int(p["n"])):
        t0 = time.perf_counter()
        loss = one_step()
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"ms": ms, "loss": loss}


def main():
    serve({"create": op_create, "init": op_init, "steps": op_steps})


if __name__ == "__main__":
    main()

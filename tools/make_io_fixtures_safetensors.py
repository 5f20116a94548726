"""Writes the safetensors reference fixtures under test/fixtures/io/safetensors with the real
`safetensors` and `huggingface_hub` libraries. Never run in CI; rerun by hand:

    python -m venv .venv && .venv/bin/pip install torch safetensors huggingface_hub
    .venv/bin/python tools/make_io_fixtures_safetensors.py

Values follow a formula that test/io-safetensors.test.ts recomputes in JavaScript:
element i of tensor k is ((i * 37 + k * 11) % 101 - 50) / 7.3 (a float64 division, then
rounded to float32), with a few special values written over the first elements.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from huggingface_hub import save_torch_state_dict
import safetensors

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "io", "safetensors")
os.makedirs(OUT, exist_ok=True)

# (name, shape); the names are deliberately unsorted, with digits, dots and non-ASCII text
SPECS = [
    ("z.last", [3, 5]),
    ("layer.10.w", [4, 2, 3]),
    ("layer.2.w", [7]),
    ("a.bias", [5]),
    ("scalar", []),
    ("empty", [0, 3]),
    ("caf\u00e9.\u00fcber", [2, 2]),
    ("B.upper", [1, 9]),
]
SPECIAL = [0.0, -0.0, 1e-8, 70000.0, -3.0e-5, 65504.0, 1e-45, 0.1]


def values(k, n):
    v = [((i * 37 + k * 11) % 101 - 50) / 7.3 for i in range(n)]
    if k == 0:
        for i, s in enumerate(SPECIAL[:n]):
            v[i] = s
    return v


def make():
    out = {}
    for k, (name, shape) in enumerate(SPECS):
        n = 1
        for d in shape:
            n *= d
        out[name] = torch.tensor(values(k, n), dtype=torch.float32).reshape(shape)
    return out


def main():
    t = make()
    meta = {"format": "pt"}
    save_file(t, os.path.join(OUT, "reference_f32.safetensors"), metadata=meta)
    save_file({k: v.to(torch.float16) for k, v in t.items()}, os.path.join(OUT, "reference_f16.safetensors"), metadata=meta)
    save_file({k: v.to(torch.bfloat16) for k, v in t.items()}, os.path.join(OUT, "reference_bf16.safetensors"), metadata=meta)
    # float16 / bfloat16 values as float32, for checking the readers' conversions
    conv = {}
    for dt, label in [(torch.float16, "F16"), (torch.bfloat16, "BF16")]:
        # JSON has no infinities: they are written as the strings "Infinity" / "-Infinity"
        conv[label] = {k: [x if abs(x) != float("inf") else ("Infinity" if x > 0 else "-Infinity") for x in v.to(dt).to(torch.float32).reshape(-1).tolist()] for k, v in t.items()}
    # a file mixing dtypes, as BERT checkpoints do with their int64 position_ids buffer
    save_file(
        {"embeddings.position_ids": torch.arange(6, dtype=torch.int64).reshape(1, 6), "embeddings.weight": t["z.last"], "mask": torch.tensor([True, False])},
        os.path.join(OUT, "mixed_dtypes.safetensors"),
        metadata=meta,
    )
    # a sharded checkpoint exactly as huggingface_hub writes it
    shard_dir = os.path.join(OUT, "sharded")
    os.makedirs(shard_dir, exist_ok=True)
    for f in os.listdir(shard_dir):
        os.remove(os.path.join(shard_dir, f))
    big = {f"model.layers.{i}.w": torch.tensor(values(i, 64), dtype=torch.float32).reshape(8, 8) for i in range(5)}
    save_torch_state_dict(big, shard_dir, max_shard_size=600, metadata=meta)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(
            {
                "source": f"python {sys.version.split()[0]}, torch {torch.__version__}, safetensors {safetensors.__version__}",
                "specs": [{"name": n, "shape": s} for n, s in SPECS],
                "special": SPECIAL,
                "converted": conv,
                "sharded_files": sorted(os.listdir(shard_dir)),
            },
            f,
            indent=1,
        )


main()

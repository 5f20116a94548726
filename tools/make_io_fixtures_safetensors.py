"""Writes the safetensors reference fixtures under test/fixtures/io/safetensors with the real
`safetensors` and `huggingface_hub` libraries. Never run in CI; rerun by hand:

    python -m venv .venv && .venv/bin/pip install torch safetensors huggingface_hub
    [KFAC_PEFT_DATA=/path/to/shared/data] .venv/bin/python tools/make_io_fixtures_safetensors.py

Values follow a formula that test/io/io-safetensors.test.ts recomputes in JavaScript:
element i of tensor k is ((i * 37 + k * 11) % 101 - 50) / 7.3 (a float64 division, then
rounded to float32), with a few special values written over the first elements.
"""
import json
import os
import struct
import sys

import torch
from safetensors import safe_open
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
    # the real PEFT adapters of the shared data, as the reference reader sees them
    shared = os.environ.get("KFAC_PEFT_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    adapters = {}
    for name in ("gpt2-lora", "distilbert-lora-imdb"):
        path = os.path.join(shared, "peft", name, "adapter_model.safetensors")
        with safe_open(path, "pt") as f:
            tensors = {}
            for k in f.keys():
                t = f.get_tensor(k)
                tensors[k] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "first": [float(x) for x in t.reshape(-1)[:3].float().tolist()], "sum": float(t.double().sum())}
            adapters[name] = {"metadata": f.metadata(), "tensors": tensors}
    # malformed files, and what the reference reader says of each
    mal_dir = os.path.join(OUT, "malformed")
    os.makedirs(mal_dir, exist_ok=True)
    for f in os.listdir(mal_dir):
        os.remove(os.path.join(mal_dir, f))
    a = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    b = {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}
    cases = {
        "well-formed": (json.dumps({"a": a, "b": b}), 12),
        "non-json-header": ('{"a": tru}', 0),
        "header-not-an-object": ("[1, 2]  ", 0),
        "duplicate-names": ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8),
        "overlapping-offsets": (json.dumps({"a": a, "b": {**b, "data_offsets": [4, 8]}}), 8),
        "gapped-offsets": (json.dumps({"a": a, "b": {**b, "data_offsets": [12, 16]}}), 16),
        "data-not-starting-at-zero": (json.dumps({"b": {**b, "data_offsets": [4, 8]}}), 8),
        "shape-offset-mismatch": (json.dumps({"a": {**a, "shape": [3]}}), 8),
        "absurd-shape": (json.dumps({"a": {**a, "shape": [2 ** 40, 2 ** 40]}}), 8),
        "negative-dimension": (json.dumps({"a": {**a, "shape": [-2]}}), 8),
        "fractional-offset": (json.dumps({"a": {**a, "data_offsets": [0, 8.5]}}), 8),
        "offsets-backwards": (json.dumps({"a": {**a, "shape": [0], "data_offsets": [8, 0]}}), 8),
        "unknown-dtype": (json.dumps({"a": {**a, "dtype": "F31"}}), 8),
        "entry-not-an-object": (json.dumps({"a": 5}), 0),
        "metadata-not-strings": (json.dumps({"__metadata__": {"format": 1}}), 0),
        "trailing-bytes": (json.dumps({"a": a, "b": b}), 13),
        "truncated-data": (json.dumps({"a": a, "b": b}), 11),
        "header-length-past-end": (None, 0),
        "huge-header-length": (None, 1),
        "shorter-than-length-field": (None, 2),
    }
    verdicts = {}
    for name, (header, data) in cases.items():
        path = os.path.join(mal_dir, f"{name}.safetensors")
        with open(path, "wb") as fh:
            if header is not None:
                h = header.encode()
                fh.write(struct.pack("<Q", len(h)) + h + bytes(data))
            elif data == 0:
                fh.write(struct.pack("<Q", 200) + b"{}")
            elif data == 1:
                fh.write(struct.pack("<Q", 2 ** 62) + b"{}" + bytes(6))
            else:
                fh.write(b"\x02\x00\x00")
        try:
            with safe_open(path, "np") as fh:
                for k in fh.keys():
                    fh.get_tensor(k)
            verdicts[name] = None
        except Exception as e:  # the reference's refusal, kept as text
            verdicts[name] = f"{type(e).__name__}: {e}"
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(
            {
                "source": f"python {sys.version.split()[0]}, torch {torch.__version__}, safetensors {safetensors.__version__}",
                "specs": [{"name": n, "shape": s} for n, s in SPECS],
                "special": SPECIAL,
                "converted": conv,
                "sharded_files": sorted(os.listdir(shard_dir)),
                "adapters": adapters,
                "malformed": verdicts,
            },
            f,
            indent=1,
        )


main()

"""PyTorch on the GPU, the peer of `kfac-peft bench eigh|attention --backend cuda`.

usage: python3 bench/peer_torch.py eigh 256,512,1024 REPEATS
prints {"torch": version, "device": name, "eigh": {"256": median_ms, ...}}. Inputs are
symmetric positive semi-definite XᵀX/R in float32, like the factors the CUDA bench decomposes.

usage: python3 bench/peer_torch.py attention B,T,H,Hkv,D REPEATS
prints {"torch": ..., "device": ..., "attention": {"fwd": median_ms, "bwd": median_ms}}:
torch.nn.functional.scaled_dot_product_attention, causal, bf16 (its fastest backend picks
itself), the backward of the output given dO.

Exits 1 when PyTorch or a CUDA device is missing.
"""
import json
import statistics
import sys
import time


def main() -> int:
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means no peer
        print(f"no torch: {e}", file=sys.stderr)
        return 1
    if not torch.cuda.is_available():
        print("torch has no CUDA device", file=sys.stderr)
        return 1
    op, sizes, repeats = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3])
    if op == "attention":
        return attention(torch, sizes, repeats)
    if op != "eigh":
        print(f"unknown op {op}", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "eigh": {}}
    g = torch.Generator(device=dev).manual_seed(8)
    for n in sizes:
        x = torch.randn(max(2 * n, 64), n, device=dev, generator=g)
        a = x.T @ x / x.shape[0]
        out["eigh"][str(n)] = timed(torch, lambda: torch.linalg.eigh(a), repeats)
    print(json.dumps(out))
    return 0


def timed(torch, fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def attention(torch, sizes, repeats: int) -> int:
    b, t, h, hkv, d = sizes
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(1)
    # [B, H, T, D], the layout scaled_dot_product_attention takes; keys/values repeated for GQA
    q = torch.randn(b, h, t, d, device=dev, generator=g, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(b, hkv, t, d, device=dev, generator=g, dtype=torch.bfloat16)
    v = torch.randn(b, hkv, t, d, device=dev, generator=g, dtype=torch.bfloat16)
    k = k.repeat_interleave(h // hkv, dim=1).requires_grad_(True)
    v = v.repeat_interleave(h // hkv, dim=1).requires_grad_(True)
    do = torch.randn(b, h, t, d, device=dev, generator=g, dtype=torch.bfloat16)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    with torch.no_grad():
        fwd = timed(torch, lambda: sdpa(q, k, v, is_causal=True), repeats)
    o = sdpa(q, k, v, is_causal=True)
    bwd = timed(torch, lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), repeats)
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "attention": {"fwd": fwd, "bwd": bwd}}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

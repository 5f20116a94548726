"""torch.linalg.eigh on the GPU, the peer of `kfac-peft bench eigh --backend cuda`.

usage: python3 bench/peer_torch.py eigh 256,512,1024 REPEATS
prints {"torch": version, "device": name, "eigh": {"256": median_ms, ...}}; exits 1 when
PyTorch or a CUDA device is missing. Inputs are symmetric positive semi-definite XᵀX/R in
float32, like the factors the CUDA bench decomposes.
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
    if op != "eigh":
        print(f"unknown op {op}", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "eigh": {}}
    g = torch.Generator(device=dev).manual_seed(8)
    for n in sizes:
        x = torch.randn(max(2 * n, 64), n, device=dev, generator=g)
        a = x.T @ x / x.shape[0]
        for _ in range(2):
            torch.linalg.eigh(a)
        torch.cuda.synchronize()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.linalg.eigh(a)
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t0) * 1e3)
        out["eigh"][str(n)] = statistics.median(ts)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

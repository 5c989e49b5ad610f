#!/usr/bin/env python3
"""PyTorch peer of bench_lse_merge: the usual four-line max / exp / weighted-sum / log
merge on the same inputs (bench_inputs.py, same seeds), the same shapes and the same
L2 handling, timed with CUDA events (median of 100 after 10 warm-up calls). Writes the
dsv4lab-bench JSON with impl "torch"; merge it with ours by compare.py.

usage: peer_lse_merge.py [--out FILE] [--iters N]     (default out: peer_lse_merge.json)
"""
import argparse
import json
import os
import sys


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_inputs import fill_uniform  # noqa: E402
from peer_util import device_json, median_us, rotation_count  # noqa: E402


def merge(v, lse):
    """v [S, T, H, D], lse [S, T, H] (natural log) -> (v [T, H, D], lse [T, H])."""
    m = lse.amax(dim=0)
    w = torch.exp(lse - m)
    W = w.sum(dim=0)
    return (v.float() * (w / W).unsqueeze(-1)).sum(dim=0).to(v.dtype), m + torch.log(W)


def run_point(pt, dev, iters):
    merge_kind, splits, tokens, heads, D, dtype, l2 = pt
    rows = tokens * heads
    es = 4 if dtype == "f32" else 2
    in_bytes = rows * splits * D * es + rows * splits * 4
    out_bytes = rows * D * es + rows * 4
    v = torch.from_numpy(fill_uniform(1, rows * splits * D, -1.0, 1.0)).view(splits, tokens, heads, D)
    lse = torch.from_numpy(fill_uniform(2, rows * splits, -4.0, 4.0)).view(splits, tokens, heads)
    tdt = torch.float32 if dtype == "f32" else torch.bfloat16
    v = v.to(tdt).cuda()  # bf16: round to nearest even, as float_to_bf16
    lse = lse.cuda()
    copies = 1 if l2 == "hot" else rotation_count(in_bytes + out_bytes, dev["l2_bytes"])
    vs = [v] + [v.clone() for _ in range(copies - 1)]
    ls = [lse] + [lse.clone() for _ in range(copies - 1)]
    us = median_us(lambda i: merge(vs[i % copies], ls[i % copies]), 10, iters)
    del vs, ls, v, lse
    torch.cuda.empty_cache()
    bw = (in_bytes + out_bytes) / (us * 1e-6) / 1e9
    print(f"{merge_kind:8s} splits {splits:3d}  {tokens:5d} x {heads:4d} x {D:4d}  {dtype:4s}  L2 {l2:4s}  "
          f"{us:9.2f} us  {bw:7.0f} GB/s")
    return {"op": "lse_merge", "impl": "torch",
            "params": {"merge": merge_kind, "splits": splits, "tokens": tokens, "heads": heads, "D": D, "dtype": dtype,
                       "l2": l2},
            "median_us": us, "bytes": float(in_bytes + out_bytes), "bandwidth_GBps": bw,
            "fraction_of_copy": bw / dev["copy_bandwidth_GBps"], "rotated_copies": copies}


def points():
    pts = []
    for dt in ("f32", "bf16"):
        pts += [("two_way", 2, 64, 128, 512, dt, "cold"), ("two_way", 2, 64, 128, 512, dt, "hot"),
                ("two_way", 2, 1024, 128, 512, dt, "cold"), ("two_way", 2, 8192, 16, 128, dt, "cold")]
        for s in (8, 32):
            pts += [("n_way", s, 64, 128, 512, dt, "cold"), ("n_way", s, 8192, 16, 128, dt, "cold")]
    return pts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", "--json", dest="out", default="peer_lse_merge.json")
    ap.add_argument("--iters", type=int, default=100)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to time", file=sys.stderr)
        return 77
    dev = device_json()
    print(f"device {dev['name']}, copy {dev['copy_bandwidth_GBps']:.0f} GB/s")
    results = [run_point(pt, dev, max(1, a.iters)) for pt in points()]
    with open(a.out, "w") as f:
        json.dump({"schema": "dsv4lab-bench", "version": 1, "op": "lse_merge", "device": dev, "results": results}, f,
                  indent=2)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    import torch  # noqa: E402  (imported here so --help works without torch)
    sys.exit(main())

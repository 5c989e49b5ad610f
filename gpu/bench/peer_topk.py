#!/usr/bin/env python3
"""torch.topk peer of bench_topk: the same grid, the same logits (bench_inputs.py, the
generator of bench_util.cuh), the same rotation over input copies, CUDA-event medians, and
the same JSON schema (impl "torch.topk"), so gpu/bench/compare.py can pair the points.

usage: peer_topk.py [--out peer_topk.json] [--quick] [--unsorted]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_inputs  # noqa: E402
from peer_util import device_json, median_us, require_torch_cuda, rotation_count  # noqa: E402

SEED = 20261121


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", "--json", dest="out", default="peer_topk.json")
    ap.add_argument("--quick", action="store_true", help="rows {1, 64}, cols {131072}")
    ap.add_argument("--unsorted", action="store_true", help="torch.topk(..., sorted=False)")
    a = ap.parse_args()
    torch = require_torch_cuda("peer_topk.py")
    device = device_json()
    copy = device["copy_bandwidth_GBps"]
    rows_list = [1, 64] if a.quick else [1, 16, 64, 256]
    cols_list = [131072] if a.quick else [16384, 65536, 131072, 262144]
    impl = "torch.topk" + ("(sorted=False)" if a.unsorted else "")
    results = []
    for dtype in ("f32", "bf16"):
        for rows in rows_list:
            for cols in cols_list:
                for k in (512, 2048):
                    host = bench_inputs.fill_uniform(SEED, rows * cols, -4.0, 4.0).reshape(rows, cols)
                    x = torch.from_numpy(np.ascontiguousarray(host)).cuda()
                    if dtype == "bf16":
                        x = x.to(torch.bfloat16)  # round to nearest even, as num::float_to_bf16
                    nbytes = x.numel() * x.element_size()
                    copies = [x] + [x.clone() for _ in range(rotation_count(nbytes, device["l2_bytes"]) - 1)]
                    us = median_us(lambda i: torch.topk(copies[i % len(copies)], k, dim=-1, sorted=not a.unsorted))
                    nb = float(nbytes + rows * k * 4)
                    bw = nb / (us * 1e-6) / 1e9
                    results.append({"op": "topk", "impl": impl,
                                    "params": {"rows": rows, "cols": cols, "k": k, "dtype": dtype},
                                    "median_us": us, "bytes": nb, "bandwidth_GBps": bw, "fraction_of_copy": bw / copy})
                    print(f"rows {rows:4d} cols {cols:6d} k {k:4d} {dtype:4s} {us:9.2f} us")
                    del copies, x
    with open(a.out, "w") as f:
        json.dump({"schema": "dsv4lab-bench", "version": 1, "op": "topk", "device": device, "results": results}, f,
                  indent=2)
        f.write("\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""PyTorch peer of bench_compress: the same shapes, the same inputs (bench_inputs.py, the
generator of bench_util.cuh), the same paged state layout, CUDA-event medians with input
rotation, and the same JSON schema (impl "torch"), so gpu/bench/compare.py pairs the points.

One timed step = what the kernel does: store the new tokens into the paged state (score +
ape), gather each emitted window's candidates through the block table, softmax over
positions (float32), weighted sum, cast to bf16.

usage: peer_compress.py [--out FILE | --json FILE] [--quick]
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
SEED_APE, SEED_KV_SCORE, SEED_STATE_KV, SEED_STATE_SCORE = SEED + 1, SEED + 2, SEED + 3, SEED + 4


def kv_len_of(prefill, nn, cr, b):
    if prefill:
        return nn
    return 64 + 4 * (b % 8) if cr == 4 else 128 * (2 + b % 2)


class Problem:
    """Device tensors of one shape (one rotation copy)."""

    def __init__(self, torch, prefill, batch, nn, hd, cr, host, dev="cuda"):
        self.t = torch
        self.prefill, self.batch, self.nn, self.hd, self.cr = prefill, batch, nn, hd, cr
        self.sd = 2 * hd if cr == 4 else hd
        self.page = 64 if cr == 4 else 128
        self.kv_len = torch.tensor(host["kv_len"], dtype=torch.int64, device=dev)
        self.pages = host["pages"]
        self.table = torch.arange(batch * self.pages, dtype=torch.int64, device=dev).view(batch, self.pages)
        self.state_kv = torch.from_numpy(host["state_kv"]).to(dev).view(-1, self.sd)
        self.state_score = torch.from_numpy(host["state_score"]).to(dev).view(-1, self.sd)
        self.kv_score = torch.from_numpy(host["kv_score"]).to(dev).to(torch.bfloat16).view(-1, 2 * self.sd)
        self.ape = torch.from_numpy(host["ape"]).to(dev).view(cr, self.sd)
        t = torch.arange(nn, device=dev)
        self.pos = (self.kv_len[:, None] - nn + t[None, :])  # [B, n]
        self.rows = self.phys(self.pos).reshape(-1)
        self.ape_rows = (self.pos % cr).reshape(-1)
        start = self.kv_len - nn
        if prefill:
            w = nn // cr  # every request starts empty and emits nn / cr windows
            self.k = (start // cr)[:, None] + torch.arange(w, device=dev)[None, :]  # [B, W]
        else:
            self.k = (self.kv_len // cr - 1)[:, None]  # [B, 1]: exactly one window per request
        if cr == 4:
            i4 = torch.arange(4, device=dev)
            a_pos = (self.k[..., None] - 1) * 4 + i4  # [B, W, 4]
            self.a_valid = (self.k[..., None] >= 1).expand_as(a_pos)
            self.a_rows = self.phys_b(a_pos.clamp(min=0))
            self.b_rows = self.phys_b(self.k[..., None] * 4 + i4)
        else:
            self.c_rows = self.phys_b(self.k[..., None] * cr + torch.arange(cr, device=dev))

    def phys(self, pos):
        """[B, n] positions -> physical state rows through the block table."""
        return self.table.gather(1, pos // self.page) * self.page + pos % self.page

    def phys_b(self, pos):
        b, w, c = pos.shape
        return self.phys(pos.reshape(b, w * c)).view(b, w, c)

    def step(self):
        torch = self.t
        hd, sd = self.hd, self.sd
        x = self.kv_score.float()
        self.state_kv.index_copy_(0, self.rows, x[:, :sd])
        self.state_score.index_copy_(0, self.rows, x[:, sd:] + self.ape[self.ape_rows])
        if self.cr == 4:
            # Gather only the half each candidate uses: A = columns [0, HD), B = [HD, 2 HD).
            sa = self.state_score[:, :hd][self.a_rows]
            sa = torch.where(self.a_valid[..., None], sa, torch.full_like(sa, float("-inf")))
            s = torch.cat([sa, self.state_score[:, hd:][self.b_rows]], dim=2)  # [B, W, 8, HD]
            v = torch.cat([self.state_kv[:, :hd][self.a_rows], self.state_kv[:, hd:][self.b_rows]], dim=2)
        else:
            s = self.state_score[self.c_rows]  # [B, W, CR, HD]
            v = self.state_kv[self.c_rows]
        w = torch.softmax(s, dim=2)
        return (w * v).sum(dim=2).to(torch.bfloat16)


def host_inputs(prefill, batch, nn, hd, cr):
    sd = 2 * hd if cr == 4 else hd
    page = 64 if cr == 4 else 128
    kv_len = [kv_len_of(prefill, nn, cr, b) for b in range(batch)]
    pages = max(kv_len) // page + 1
    elems = batch * pages * page * sd
    if prefill:
        one = bench_inputs.fill_uniform(SEED_KV_SCORE, nn * 2 * sd, -2.0, 2.0)
        kv_score = np.tile(one, batch)
        state_kv = np.zeros(elems, dtype=np.float32)
        state_score = np.zeros(elems, dtype=np.float32)
    else:
        kv_score = bench_inputs.fill_uniform(SEED_KV_SCORE, batch * nn * 2 * sd, -2.0, 2.0)
        state_kv = bench_inputs.fill_uniform(SEED_STATE_KV, elems, -2.0, 2.0)
        state_score = bench_inputs.fill_uniform(SEED_STATE_SCORE, elems, -2.0, 2.0)
    ape = bench_inputs.fill_uniform(SEED_APE, cr * sd, -1.0, 1.0)
    return {"kv_len": kv_len, "pages": pages, "kv_score": kv_score, "state_kv": state_kv,
            "state_score": state_score, "ape": ape}


def traffic_bytes(prefill, batch, nn, hd, cr):
    """The same minimum traffic bench_compress.cu reports."""
    sd = 2 * hd if cr == 4 else hd
    windows = 0
    old_reads = 0
    for b in range(batch):
        kl = kv_len_of(prefill, nn, cr, b)
        start = kl - nn
        for k in range(start // cr, kl // cr):
            windows += 1
            cand = range(4 * k - 4, 4 * k + 4) if cr == 4 else range(cr * k, cr * k + cr)
            old_reads += sum(1 for p in cand if 0 <= p < start)
    return (cr * sd * 4.0 + batch * nn * 2 * sd * 2.0 + batch * nn * sd * 2 * 4.0 + windows * hd * 2.0
            + old_reads * hd * 2 * 4.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", "--json", dest="out", default="peer_compress.json")
    ap.add_argument("--quick", action="store_true", help="batch {16, 256}, no 64k prefill")
    a = ap.parse_args()
    torch = require_torch_cuda("peer_compress.py")
    device = device_json()
    copy = device["copy_bandwidth_GBps"]
    batches = [16, 256] if a.quick else [16, 64, 128, 256]
    shapes = [(False, b, nn, hd, cr) for cr in (4, 128) for hd in (128, 512) for nn in (1, 4) for b in batches]
    for cr in (4, 128):
        shapes.append((True, 1, 8192, 512, cr))
        if not a.quick:
            shapes.append((True, 8, 65536, 512, cr))
    results = []
    with torch.no_grad():
        for prefill, batch, nn, hd, cr in shapes:
            host = host_inputs(prefill, batch, nn, hd, cr)
            nb = traffic_bytes(prefill, batch, nn, hd, cr)
            copies = [Problem(torch, prefill, batch, nn, hd, cr, host)
                      for _ in range(rotation_count(nb, device["l2_bytes"]))]
            us = median_us(lambda i: copies[i % len(copies)].step(), 10, 30 if prefill else 100)
            bw = nb / (us * 1e-6) / 1e9
            results.append({"op": "compress", "impl": "torch",
                            "params": {"batch": batch, "NN": nn, "HD": hd, "CR": cr,
                                       "mode": "prefill" if prefill else "decode"},
                            "median_us": us, "bytes": nb, "bandwidth_GBps": bw, "fraction_of_copy": bw / copy})
            print(f"{'prefill' if prefill else 'decode':7s} batch {batch:3d} NN {nn:5d} HD {hd:3d} CR {cr:3d} "
                  f"{us:10.2f} us")
            sys.stdout.flush()
            del copies
            torch.cuda.empty_cache()
    with open(a.out, "w") as f:
        json.dump({"schema": "dsv4lab-bench", "version": 1, "op": "compress", "device": device, "results": results},
                  f, indent=2)
        f.write("\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Merge our bench JSON with a peer's (same params keys), add ratio = peer / ours per
point, print a table and write the merged JSON.

usage: compare.py OURS.json PEER.json --out MERGED.json
"""
import argparse
import json
import sys


def key(r):
    return json.dumps(r["params"], sort_keys=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ours")
    ap.add_argument("peer")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ours = json.load(open(a.ours))
    peer = json.load(open(a.peer))
    peer_by = {key(r): r for r in peer["results"]}
    rows = []
    for r in ours["results"]:
        p = peer_by.get(key(r))
        if p is not None:
            r["peer_impl"] = p["impl"]
            r["peer_median_us"] = p["median_us"]
            r["speedup_vs_peer"] = p["median_us"] / r["median_us"]
        rows.append(r)
    ours["results"] = rows + [dict(r, role="peer") for r in peer["results"]]
    json.dump(ours, open(a.out, "w"), indent=2)
    copy = ours["device"]["copy_bandwidth_GBps"]
    print(f"device {ours['device']['name']}  copy {copy:.0f} GB/s")
    print(f"{'params':60s} {'ours us':>9s} {'peer us':>9s} {'x peer':>7s} {'GB/s':>7s} {'%copy':>6s}")
    for r in rows:
        print(f"{json.dumps(r['params'], sort_keys=True)[:60]:60s} {r['median_us']:9.2f} "
              f"{r.get('peer_median_us', float('nan')):9.2f} {r.get('speedup_vs_peer', float('nan')):7.2f} "
              f"{r['bandwidth_GBps']:7.0f} {100 * r['fraction_of_copy']:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

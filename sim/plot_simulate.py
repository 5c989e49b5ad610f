#!/usr/bin/env python3
"""Plots of `dsv4lab simulate` output (schema dsv4lab-simulate v1).

usage: plot_simulate.py SIMULATE.json OUTDIR

Writes into OUTDIR:
  simulate_time.png    mean predicted time per heuristic and batch size (bars, p99 as a tick)
  simulate_splits.png  mean splits per request chosen by each heuristic
  simulate_sweep.png   mean time against the swept parameter (only with --sweep)
PNG metadata carries no version or date, so the same JSON gives the same bytes.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

META = {"Software": None}


def grouped(results, key, batches, heuristics, sweep_value=None):
    out = {}
    for r in results:
        if sweep_value is not None and r.get("sweep_value") != sweep_value:
            continue
        out[(r["batch"], r["heuristic"])] = r[key]
    return [[out.get((b, h), 0.0) for b in batches] for h in heuristics]


def bars(ax, values, batches, heuristics, ylabel, ticks=None):
    n = len(heuristics)
    width = 0.8 / max(n, 1)
    for i, h in enumerate(heuristics):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(batches))]
        ax.bar(xs, values[i], width, label=h)
        if ticks is not None:
            ax.scatter(xs, ticks[i], marker="_", color="black", s=40, zorder=3)
    ax.set_xticks(range(len(batches)))
    ax.set_xticklabels([f"batch {b}" for b in batches])
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    if doc.get("schema") != "dsv4lab-simulate":
        print(f"{argv[1]}: not a dsv4lab-simulate document", file=sys.stderr)
        return 2
    out = argv[2]
    os.makedirs(out, exist_ok=True)
    cfg = doc["config"]
    results = doc["results"]
    batches = sorted({r["batch"] for r in results})
    heuristics = []
    for r in results:
        if r["heuristic"] not in heuristics:
            heuristics.append(r["heuristic"])
    sweep = cfg.get("sweep")
    first = results[0].get("sweep_value") if sweep else None
    title = f'{cfg["gpu"]["name"]}, dist {cfg["dist"]}, {cfg["samples"]} batches each, seed {cfg["seed"]}'
    if sweep:
        title += f', {sweep["param"]} = {first:g}'

    fig, ax = plt.subplots(figsize=(10, 5))
    bars(ax, grouped(results, "mean_us", batches, heuristics, first), batches, heuristics,
         "predicted time (us), tick = p99", grouped(results, "p99_us", batches, heuristics, first))
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "simulate_time.png"), dpi=110, metadata=META)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 5))
    bars(ax, grouped(results, "mean_splits", batches, heuristics, first), batches, heuristics,
         "mean splits per request")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "simulate_splits.png"), dpi=110, metadata=META)
    plt.close(fig)

    if sweep:
        fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4), squeeze=False)
        for ax, b in zip(axes[0], batches):
            for h in heuristics:
                pts = sorted((r["sweep_value"], r["mean_us"]) for r in results if r["batch"] == b and r["heuristic"] == h)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=h)
            ax.set_xlabel(sweep["param"])
            ax.set_ylabel("mean predicted time (us)")
            ax.set_title(f"batch {b}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "simulate_sweep.png"), dpi=110, metadata=META)
        plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

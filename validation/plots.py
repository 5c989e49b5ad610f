#!/usr/bin/env python3
"""Plots of a dsv4lab parity report folder (reads REPORT_DIR/report.json).

Writes into the folder, only for what the report holds:
  plot_ulp_hist.png        ulp-distance histograms of the float comparisons
  plot_cos_hist.png        per-row cosine histograms (binned by 1 - cos)
  plot_parity_heatmap.png  group x step: share of the comparisons that pass at that step
  plot_topk_recall.png     top-k recall (min and mean over rows) per step
  plot_cost_model.png      predicted (and measured) time per group; simulator's best choices

Headless (matplotlib Agg). The PNG bytes are deterministic: no timestamps or software tag
in the metadata, fixed size and dpi. Exit 0 on success, 77 when matplotlib is missing,
2 on a bad report.

Usage: plots.py REPORT_DIR
"""
import json
import os
import sys

PNG_META = {"Software": None}
DPI = 100


def load(report_dir):
    path = os.path.join(report_dir, "report.json")
    try:
        with open(path, encoding="utf-8") as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        print(f"plots.py: cannot read {path}: {e}", file=sys.stderr)
        sys.exit(2)
    if rep.get("schema") != "dsv4lab-report":
        print(f"plots.py: {path} is not a dsv4lab report", file=sys.stderr)
        sys.exit(2)
    return rep


def comparisons(rep, kind):
    for g in rep.get("groups", []):
        for c in g.get("comparisons", []):
            if c.get("kind") == kind:
                yield g, c


def save(fig, report_dir, name):
    fig.savefig(os.path.join(report_dir, name), dpi=DPI, metadata=PNG_META)


def bar_histograms(plt, series, labels, title, xlabel, report_dir, name):
    """series: list of (legend, [counts per label])."""
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    n = len(series)
    width = 0.8 / n
    for i, (legend, counts) in enumerate(series):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, [max(c, 0) for c in counts], width=width, label=legend)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save(fig, report_dir, name)
    plt.close(fig)
    return True


def short(g, c):
    return f"{g['group']} {c['name']}"


def plot_ulp(plt, rep, d):
    series, labels = [], None
    for g, c in comparisons(rep, "float"):
        h = c["metrics"].get("ulp_hist", {})
        labels = list(h.keys())
        series.append((short(g, c), list(h.values())))
    return bar_histograms(plt, series[:12], labels or [], "ulp distance (finite pairs)", "ulp", d, "plot_ulp_hist.png")


def plot_cos(plt, rep, d):
    series, labels = [], None
    for g, c in comparisons(rep, "float"):
        h = c["metrics"].get("cos_hist", {})
        labels = list(h.keys())
        series.append((short(g, c), list(h.values())))
    return bar_histograms(plt, series[:12], labels or [], "per-row cosine", "1 - cos", d, "plot_cos_hist.png")


def plot_heatmap(plt, rep, d):
    groups = [g for g in rep.get("groups", []) if g.get("comparisons")]
    steps = max((int(g.get("steps", 0)) for g in groups), default=0)
    if not groups or steps == 0:
        return False
    grid = []
    for g in groups:
        row = []
        for s in range(steps):
            total = passed = 0
            for c in g["comparisons"]:
                for e in c.get("per_step", []):
                    if e.get("step") == s:
                        total += 1
                        passed += 1 if e.get("pass") else 0
            row.append(passed / total if total else float("nan"))
        grid.append(row)
    fig, ax = plt.subplots(figsize=(max(6, min(12, 3 + steps * 0.3)), 1.5 + 0.4 * len(groups)))
    im = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([g["group"] for g in groups], fontsize=8)
    ax.set_xlabel("step")
    ax.set_title("share of comparisons passing, per group and step")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save(fig, d, "plot_parity_heatmap.png")
    plt.close(fig)
    return True


def plot_recall(plt, rep, d):
    lines = []
    for g, c in comparisons(rep, "topk"):
        if c.get("want") == "reference" and c.get("got") == "gpu":
            continue
        ps = c.get("per_step", [])
        if ps:
            lines.append((short(g, c), [e["step"] for e in ps], [e["recall_min"] for e in ps],
                          [e["recall_mean"] for e in ps]))
    if not lines:
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, xs, mins, means in lines[:12]:
        (l,) = ax.plot(xs, means, marker="o", markersize=3, label=f"{name} (mean)")
        ax.plot(xs, mins, linestyle="--", color=l.get_color(), linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("recall (solid mean, dashed min)")
    ax.set_title("top-k recall per step")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save(fig, d, "plot_topk_recall.png")
    plt.close(fig)
    return True


def plot_cost(plt, rep, d):
    names, pred, meas = [], [], []
    for g in rep.get("groups", []):
        t = g.get("timing")
        if isinstance(t, dict) and isinstance(t.get("predicted_us"), (int, float)):
            names.append(g["group"])
            pred.append(t["predicted_us"])
            m = t.get("measured_us")
            meas.append(m if isinstance(m, (int, float)) else None)
    sim = rep.get("simulation")
    best = sim.get("best", []) if isinstance(sim, dict) else []
    if not names and not best:
        return False
    ncols = (1 if names else 0) + (1 if best else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    col = 0
    if names:
        ax = axes[0][col]
        col += 1
        xs = list(range(len(names)))
        has_meas = any(m is not None for m in meas)
        w = 0.4 if has_meas else 0.8
        ax.bar([x - (w / 2 if has_meas else 0) for x in xs], pred, width=w, label="predicted")
        if has_meas:
            ax.bar([x + w / 2 for x in xs], [m or 0 for m in meas], width=w, label="measured")
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("us per launch")
        ax.set_title("cost model per group")
        ax.legend(fontsize=7)
    if best:
        ax = axes[0][col]
        xs = list(range(len(best)))
        ax.bar(xs, [b["mean_us"] for b in best])
        ax.set_xticks(xs)
        ax.set_xticklabels([f"B={b['batch']}\n{b['heuristic']}" for b in best], fontsize=7)
        ax.set_ylabel("predicted us (attention + combine)")
        ax.set_title(f"best split heuristic ({sim.get('gpu', '')})")
    fig.tight_layout()
    save(fig, d, "plot_cost_model.png")
    plt.close(fig)
    return True


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report_dir = argv[1]
    rep = load(report_dir)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots.py: matplotlib is not installed", file=sys.stderr)
        return 77
    plt.rcParams.update({"font.size": 9, "svg.hashsalt": "dsv4lab", "path.simplify": False})
    for fn in (plot_ulp, plot_cos, plot_heatmap, plot_recall, plot_cost):
        fn(plt, rep, report_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""validation/plots.py runs headless on a small hand-written report: every plot the report
supports is drawn, PNG bytes are identical across runs, only the plots with data appear,
a bad report exits 2. Exit 77 (skipped) without matplotlib.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import matplotlib  # noqa: F401
except ImportError:
    print("skipped: matplotlib missing")
    sys.exit(77)

SRC = os.environ.get("DSV4LAB_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLOTS = os.path.join(SRC, "validation", "plots.py")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def float_cmp(name, ok, steps):
    return {
        "name": name, "dataset": name.split(":")[0], "got": "reference", "want": "oracle", "kind": "float",
        "pass": ok, "rule": {"check": "tolerance"}, "failures": [] if ok else ["x"], "note": "",
        "metrics": {"ulp_hist": {"0": 90, "1": 7, "2": 2, "3-4": 1, "5-8": 0, ">8": 0},
                    "cos_hist": {"exact": 3, "<=1e-7": 4, "<=1e-6": 1, "<=1e-5": 0, "<=1e-4": 0,
                                 "<=1e-3": 0, "<=1e-2": 0, ">1e-2": 0 if ok else 1}},
        "per_step": [{"step": s, "pass": ok or s != 1, "max_ulp": s} for s in range(steps)],
    }


def topk_cmp(steps):
    return {
        "name": "topk: captured vs reference", "dataset": "topk", "got": "captured", "want": "reference",
        "kind": "topk", "pass": True, "rule": {"check": "tie"}, "failures": [], "note": "", "metrics": {},
        "per_step": [{"step": s, "pass": True, "recall_min": 0.9 + 0.01 * s, "recall_mean": 0.99} for s in range(steps)],
    }


def report(with_cost):
    return {
        "schema": "dsv4lab-report", "version": 1, "summary": {"pass": False},
        "groups": [
            {"group": "/indexer/L00", "op": "topk", "steps": 4, "comparisons": [topk_cmp(4)],
             "timing": {"predicted_us": 12.5, "measured_us": 14.0} if with_cost else None},
            {"group": "/merge/attn", "op": "merge", "steps": 4,
             "comparisons": [float_cmp("v: reference vs oracle", False, 4), float_cmp("lse: reference vs oracle", True, 4)],
             "timing": {"predicted_us": 3.0} if with_cost else None},
        ],
        "simulation": {"gpu": "h100", "best": [{"batch": 16, "heuristic": "fa3", "mean_us": 20.0}]} if with_cost else None,
    }


def run(d):
    return subprocess.run([sys.executable, PLOTS, d], capture_output=True, text=True)


def pngs(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".png"))


tmp = tempfile.mkdtemp(prefix="dsv4lab_test_plots_")
try:
    a, b, c = (os.path.join(tmp, x) for x in "abc")
    for d, cost in ((a, True), (b, True), (c, False)):
        os.makedirs(d)
        with open(os.path.join(d, "report.json"), "w") as f:
            json.dump(report(cost), f)
        r = run(d)
        check(r.returncode == 0, f"plots.py exit {r.returncode}: {r.stderr}")
    want = ["plot_cos_hist.png", "plot_cost_model.png", "plot_parity_heatmap.png", "plot_topk_recall.png",
            "plot_ulp_hist.png"]
    check(pngs(a) == want, f"plots drawn: {pngs(a)}")
    check(pngs(c) == [p for p in want if p != "plot_cost_model.png"], f"without timings: {pngs(c)}")
    for p in pngs(a):
        with open(os.path.join(a, p), "rb") as f1, open(os.path.join(b, p), "rb") as f2:
            x, y = f1.read(), f2.read()
        check(x[:8] == b"\x89PNG\r\n\x1a\n", f"{p} is not a PNG")
        check(x == y, f"{p} differs between two runs")
        check(b"Software" not in x, f"{p} carries a Software tag")
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad)
    with open(os.path.join(bad, "report.json"), "w") as f:
        f.write('{"schema": "something else"}')
    check(run(bad).returncode == 2, "a non-report must exit 2")
    check(run(os.path.join(tmp, "missing")).returncode == 2, "a missing report must exit 2")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print(f"{len(failures)} failures", file=sys.stderr)
    sys.exit(1)
print("plots.py: ok")

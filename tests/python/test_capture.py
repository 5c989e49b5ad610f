"""Capture helper round trip: write with traces/python/dsv4lab_capture.py, read back with the
C++ reader through the dsv4lab CLI (inspect --json / --verify / --dump), compare bits; bad
files give exit 2 and one stderr line naming the file. Exit 77 (skipped) without h5py or the CLI.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError:
    print("skipped: numpy/h5py missing")
    sys.exit(77)

SRC = os.environ.get("DSV4LAB_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("DSV4LAB_CLI", "")
if not CLI or not os.access(CLI, os.X_OK):
    print("skipped: DSV4LAB_CLI not set")
    sys.exit(77)
sys.path.insert(0, os.path.join(SRC, "traces", "python"))
import dsv4lab_capture as cap  # noqa: E402

SEED = int(os.environ.get("DSV4LAB_SEED", "5"))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args):
    p = subprocess.run([CLI, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def dump(path, ds, step=0):
    rc, out, err = run("inspect", path, "--dump", ds, "--step", str(step))
    check(rc == 0, f"dump {ds} step {step}: rc {rc} {err}")
    return json.loads(out) if rc == 0 else None


def bits_of(arr, dtype):
    if dtype == "float32":
        return np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32).reshape(-1).tolist()
    return np.ascontiguousarray(arr).view(np.uint16).reshape(-1).tolist()


def f32_to_bf16_bits(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # RNE (no NaN here)


def main():
    rng = np.random.default_rng(SEED)
    tmp = tempfile.mkdtemp(prefix="dsv4lab-capture-")
    path = os.path.join(tmp, "cap.h5")
    steps = 3
    batch, next_n, k, cr = 2, 2, 8, 4
    rows, cols = batch * next_n, 40
    written = {}

    # specials in the first logits: NaN payload, ±inf, -0
    def logits_f32():
        x = rng.normal(size=(rows, cols)).astype(np.float32)
        x[0, :4] = np.array([0x7FC00001, 0xFF800000, 0x7F800000, 0x80000000], dtype=np.uint32).view(np.float32)
        return x

    with cap.TraceFile(path, model="test-model", notes="capture test", seed=SEED) as tf:
        ix = tf.indexer("L00", k=k, compress_ratio=cr, next_n=next_n)
        ixb = tf.indexer("L01", k=k, compress_ratio=cr, next_n=next_n)
        mg = tf.merge("dual", scopes=["swa", "compressed"], sink=rng.normal(size=3).astype(np.float32))
        sp = tf.merge("split")
        ape = rng.normal(size=(4, 256)).astype(np.float32)
        cp = tf.compressor("idx", head_dim=128, compress_ratio=4, next_n=next_n, ape=ape,
                           kv_dtype="bfloat16", state_dtype="float32", out_dtype="bfloat16")
        page, blocks = 16, 64
        paged_kv = rng.normal(size=(blocks, page, 256)).astype(np.float32)
        paged_sc = rng.normal(size=(blocks, page, 256)).astype(np.float32)
        table = np.stack([rng.permutation(blocks)[:8] for _ in range(batch)]).astype(np.int32)
        for s in range(steps):
            seq = np.array([120 + 2 * s, 61 + 2 * s], dtype=np.int32)  # N_r <= 30 < cols
            lg = logits_f32()
            topk = rng.integers(-1, 30, size=(rows, k)).astype(np.int32)
            pre = rng.integers(-1, 30, size=(batch, k)).astype(np.int32)
            ix.append(lg, seq, pre_idx=pre, topk=topk)
            lgb = f32_to_bf16_bits(rng.normal(size=(rows, cols)))
            ixb.append(lgb, seq, logits_dtype="bfloat16")
            vp = f32_to_bf16_bits(rng.normal(size=(2, rows, 3, 16)))
            lse = rng.normal(size=(2, rows, 3)).astype(np.float32)
            lse[1, 0, 0] = np.inf
            lse[0, 1, 2] = -np.inf
            vout = f32_to_bf16_bits(rng.normal(size=(rows, 3, 16)))
            mg.append(vp, lse, v=vout, lse=rng.normal(size=(rows, 3)).astype(np.float32), v_dtype="bfloat16")
            vps = rng.normal(size=(4, rows, 3, 16)).astype(np.float32)
            ns = rng.integers(0, 5, size=rows).astype(np.int32)
            sp.append(vps, rng.normal(size=(4, rows, 3)).astype(np.float32), num_splits=ns)
            kv_len = np.array([100 + next_n * s, 37 + next_n * s], dtype=np.int32)
            kvs = f32_to_bf16_bits(rng.normal(size=(rows, 512)))
            out = f32_to_bf16_bits(rng.normal(size=(batch, 1, 128)))
            cp.append(kvs, kv_len, paged=(paged_kv, paged_sc, table, table), out=out)
            written[s] = dict(lg=lg, seq=seq, topk=topk, pre=pre, lgb=lgb, vp=vp, lse=lse, vout=vout, vps=vps, ns=ns,
                              kv_len=kv_len, kvs=kvs, out=out)

    # ---- structure through the C++ reader
    rc, out, err = run("inspect", path, "--json")
    check(rc == 0, f"inspect --json rc {rc}: {err}")
    j = json.loads(out)
    check(j["format_version"] == 1 and j["model"] == "test-model" and j["seed"] == SEED, "root attributes")
    check(j["producer"].startswith("dsv4lab_capture.py"), "producer")
    groups = {g["path"]: g for g in j["groups"]}
    check(set(groups) == {"/indexer/L00", "/indexer/L01", "/merge/dual", "/merge/split", "/compressor/idx"},
          f"groups {sorted(groups)}")
    for g in groups.values():
        check(g["steps"] == steps, f"{g['path']} steps {g['steps']}")
    ds = {d["name"]: d for d in groups["/indexer/L00"]["datasets"]}
    check(ds["logits"]["shape"] == [steps, rows, cols] and ds["logits"]["dtype"] == "float32", "L00 logits")
    check(ds["logits"]["chunk"] == [1, rows, cols] and "gzip" in ds["logits"]["filters"], "chunked, gzip")
    check({d["name"]: d for d in groups["/indexer/L01"]["datasets"]}["logits"]["dtype"] == "bfloat16", "L01 bf16")
    check(groups["/indexer/L00"]["attributes"] == {"compress_ratio": 4, "k": 8, "next_n": 2}, "indexer attributes")
    check(groups["/merge/dual"]["attributes"]["scopes"] == "swa,compressed", "scopes")
    cds = {d["name"]: d for d in groups["/compressor/idx"]["datasets"]}
    check(cds["state_kv"]["shape"] == [steps, batch, 8, 256], f"state window {cds['state_kv']['shape']}")

    rc, out, err = run("inspect", path, "--verify")
    check(rc == 0 and "all checks passed" in out, f"verify: {rc} {err}")

    # ---- values, bit for bit
    for s in range(steps):
        w = written[s]
        d = dump(path, "/indexer/L00/logits", s)
        check(d["bits"] == bits_of(w["lg"], "float32"), f"L00 logits bits step {s}")
        check(d["values"][:4] == ["nan", "-inf", "inf", -0.0], f"specials {d['values'][:4]}")
        check(dump(path, "/indexer/L00/seq_lens", s)["values"] == w["seq"].tolist(), "seq_lens")
        check(dump(path, "/indexer/L00/topk", s)["values"] == w["topk"].reshape(-1).tolist(), "topk")
        check(dump(path, "/indexer/L00/pre_idx", s)["values"] == w["pre"].reshape(-1).tolist(), "pre_idx")
        check(dump(path, "/indexer/L01/logits", s)["bits"] == w["lgb"].reshape(-1).tolist(), "bf16 logits")
        check(dump(path, "/merge/dual/v_partial", s)["bits"] == w["vp"].reshape(-1).tolist(), "v_partial bf16")
        check(dump(path, "/merge/dual/lse_partial", s)["bits"] == bits_of(w["lse"], "float32"), "lse_partial")
        check(dump(path, "/merge/dual/v", s)["bits"] == w["vout"].reshape(-1).tolist(), "captured v")
        check(dump(path, "/merge/split/v_partial", s)["bits"] == bits_of(w["vps"], "float32"), "split v_partial")
        check(dump(path, "/merge/split/num_splits", s)["values"] == w["ns"].tolist(), "num_splits")
        check(dump(path, "/compressor/idx/kv_score", s)["bits"] == w["kvs"].reshape(-1).tolist(), "kv_score")
        check(dump(path, "/compressor/idx/out", s)["bits"] == w["out"].reshape(-1).tolist(), "out")
        # state window extracted from the pages
        sk = np.array(dump(path, "/compressor/idx/state_kv", s)["bits"], dtype=np.uint32).view(np.float32).reshape(batch, 8, 256)
        for b in range(batch):
            base = cap.compressor_state_base(w["kv_len"][b], next_n, 4)
            for jrow in range(8):
                p = base + jrow
                want = paged_kv[table[b][p // page], p % page] if p < w["kv_len"][b] - next_n else np.zeros(256, np.float32)
                check(np.array_equal(sk[b, jrow].view(np.uint32), want.view(np.uint32)), f"state row {b},{jrow} step {s}")
        check(dump(path, "/compressor/idx/state_base", s)["values"] ==
              [cap.compressor_state_base(x, next_n, 4) for x in w["kv_len"]], "state_base")
    check(dump(path, "/compressor/idx/ape")["bits"] == bits_of(ape, "float32"), "ape")

    # ---- append mode
    with cap.TraceFile(path, mode="a") as tf:
        ix = tf.indexer("L00", k=k, compress_ratio=cr, next_n=next_n)
        ix.append(logits_f32(), np.array([130, 70], np.int32), pre_idx=np.zeros((batch, k), np.int32),
                  topk=np.zeros((rows, k), np.int32))
    rc, out, _ = run("inspect", path, "--json")
    check({g["path"]: g for g in json.loads(out)["groups"]}["/indexer/L00"]["steps"] == steps + 1, "append mode")

    # ---- bad files: exit 2, one stderr line naming the file (and the object)
    def bad(name, mutate, parts, verify=False):
        p = os.path.join(tmp, name)
        with open(path, "rb") as src, open(p, "wb") as dst:
            dst.write(src.read())
        mutate(p)
        rc, _, err = run("inspect", p, *(["--verify"] if verify else []))
        lines = err.strip().splitlines()
        check(rc == 2, f"{name}: exit {rc} ({err.strip()})")
        check(len(lines) == 1, f"{name}: {len(lines)} stderr lines")
        for part in [name, *parts]:
            check(part in err, f"{name}: '{part}' not in {err.strip()}")

    def h5edit(fn):
        def m(p):
            with h5py.File(p, "r+") as f:
                fn(f)
        return m

    bad("missing.h5", lambda p: os.remove(p), ["no such file"])
    bad("text.h5", lambda p: open(p, "w").write("not hdf5\n"), ["not an HDF5 file"])
    bad("trunc.h5", lambda p: os.truncate(p, os.path.getsize(p) // 2), [])
    bad("newer.h5", h5edit(lambda f: f.attrs.modify("format_version", np.int64(2))), ["format_version 2", "newer"])
    bad("nodata.h5", h5edit(lambda f: f["/indexer/L00"].__delitem__("seq_lens")), ["/indexer/L00/seq_lens", "missing"])

    def float_lens(f):
        g = f["/indexer/L00"]
        data = g["seq_lens"][...]
        del g["seq_lens"]
        g.create_dataset("seq_lens", data=data.astype(np.float32))
    bad("dtype.h5", h5edit(float_lens), ["/indexer/L00/seq_lens", "wrong dtype"])

    def raw_uint16(f):
        g = f["/indexer/L01"]
        data = g["logits"][...]
        del g["logits"]
        g.create_dataset("logits", data=data)  # uint16 without the dtype attribute
    bad("nodtype.h5", h5edit(raw_uint16), ["/indexer/L01/logits", "dtype"])

    def bad_shape(f):
        g = f["/indexer/L00"]
        data = g["topk"][...]
        del g["topk"]
        g.create_dataset("topk", data=data[:, :, :5])
    bad("shape.h5", h5edit(bad_shape), ["/indexer/L00/topk", "wrong shape"])

    def long_rows(f):
        f["/indexer/L00/seq_lens"][1] = np.array([400, 61], np.int32)  # N = 100 > 40 columns
    bad("toolong.h5", h5edit(long_rows), ["/indexer/L00/seq_lens", "step 1 row 0", "columns"])

    # ---- the embedded default trace
    default = os.path.join(os.environ.get("DSV4LAB_BINARY_DIR", ""), "samples", "default.h5")
    if os.path.exists(default):
        rc, out, err = run("inspect", "--verify")
        check(rc == 0 and "/indexer/L00" in out and "/compressor/" in out, f"default trace: {rc} {err}")

    if failures:
        print(f"{len(failures)} failures (seed {SEED})")
        return 1
    print("capture round trip ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Capture decode-kernel inputs and outputs into a dsv4lab trace (HDF5, format version 1).

Needs only numpy and h5py. Arrays may be numpy arrays or anything with ``.cpu().numpy()``
(torch tensors, bfloat16 included). The layout is traces/SCHEMA.md; ``dsv4lab inspect FILE
--verify`` checks a capture, ``dsv4lab replay FILE`` replays it.

    import dsv4lab_capture as cap
    with cap.TraceFile("run.h5", model="deepseek-v4-flash") as tf:
        ix = tf.indexer("L02", k=512, compress_ratio=4, next_n=1)
        mg = tf.merge("dual", scopes=["swa", "compressed"], sink=sink)
        for step in range(steps):
            ...  # run the model
            ix.append(logits, seq_lens, pre_idx=pre_idx, topk=topk_out)
            mg.append(v_partial, lse_partial, v=v_out, lse=lse_out)

bf16 / fp16 data is stored as uint16 bit patterns with the dataset attribute ``dtype``; give
``dtype="bfloat16"`` when you pass raw uint16 bit patterns (torch bf16 tensors, and numpy
arrays whose dtype is named "bfloat16", are recognised on their own).
"""

import os

import h5py
import numpy as np

FORMAT = "dsv4lab-trace"
FORMAT_VERSION = 1
PRODUCER = "dsv4lab_capture.py 1"

_FLOAT_DTYPES = ("float32", "bfloat16", "float16")


def _to_numpy(x, dtype=None):
    """Return (array, dtype name) where dtype name is float32/bfloat16/float16/int32."""
    if x is None:
        return None, None
    tname = str(getattr(x, "dtype", ""))
    if tname == "torch.bfloat16":
        import torch  # only when a torch tensor was given

        arr = x.detach().contiguous().view(torch.int16).cpu().numpy().view(np.uint16)
        return arr, "bfloat16"
    if hasattr(x, "cpu") and hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else x.cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.name == "bfloat16":  # ml_dtypes / jax bfloat16
        return arr.view(np.uint16), "bfloat16"
    if dtype in ("bfloat16", "float16") and arr.dtype in (np.uint16, np.int16):
        return arr.view(np.uint16), dtype
    if arr.dtype == np.float16:
        return arr.view(np.uint16), "float16"
    if dtype is not None:
        if dtype == "float32":
            return arr.astype(np.float32, copy=False), "float32"
        if dtype == "int32":
            return arr.astype(np.int32, copy=False), "int32"
        if dtype in ("bfloat16", "float16"):
            raise TypeError(f"{dtype} data must be given as a bf16/fp16 tensor or as uint16 bit patterns")
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False), "float32"
    if arr.dtype.kind in "iu":
        return arr.astype(np.int32, copy=False), "int32"
    raise TypeError(f"unsupported array dtype {arr.dtype}")


def _str_attr(obj, name, value):
    data = value.encode("utf-8")
    obj.attrs.create(name, np.frombuffer(data or b"\0", dtype=f"S{max(1, len(data))}")[0],
                     dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def _set_attr(obj, name, value):
    if isinstance(value, str):
        _str_attr(obj, name, value)
    elif isinstance(value, (bool, int, np.integer)):
        obj.attrs.create(name, np.int64(value))
    elif isinstance(value, (float, np.floating)):
        obj.attrs.create(name, np.float64(value))
    else:
        arr = np.asarray(value)
        obj.attrs.create(name, arr.astype(np.int64 if arr.dtype.kind in "iub" else np.float64))


class _Steps:
    """Step-major datasets of one group, created on the first append."""

    def __init__(self, group, compress):
        self.group = group
        self.compress = compress

    def append(self, name, arr, dtype):
        if name not in self.group:
            kw = dict(compression="gzip", compression_opts=1, shuffle=True) if self.compress else {}
            store = np.uint16 if dtype in ("bfloat16", "float16") else (np.int32 if dtype == "int32" else np.float32)
            ds = self.group.create_dataset(name, shape=(0,) + arr.shape, maxshape=(None,) + arr.shape,
                                           chunks=(1,) + arr.shape, dtype=store, track_times=False, **kw)
            if dtype in ("bfloat16", "float16"):
                _str_attr(ds, "dtype", dtype)
        ds = self.group[name]
        if ds.shape[1:] != arr.shape:
            raise ValueError(f"{self.group.name}/{name}: step shape {arr.shape}, dataset has {ds.shape[1:]}")
        stored = "float32" if ds.dtype == np.float32 else ("int32" if ds.dtype == np.int32 else ds.attrs.get("dtype"))
        if isinstance(stored, bytes):
            stored = stored.decode()
        if stored != dtype:
            raise TypeError(f"{self.group.name}/{name}: appending {dtype} to a {stored} dataset")
        n = ds.shape[0]
        ds.resize(n + 1, axis=0)
        ds[n] = arr

    def steps(self, name):
        return self.group[name].shape[0] if name in self.group else 0


class _Group:
    def __init__(self, tf, path, attrs):
        f = tf.file
        existed = path in f
        self.group = f.require_group(path)
        if not existed:
            for k, v in attrs.items():
                if v is not None:
                    _set_attr(self.group, k, v)
        else:
            for k, v in attrs.items():
                if v is None:
                    continue
                old = self.group.attrs.get(k)
                old = old.decode() if isinstance(old, bytes) else old
                if old is not None and str(old) != str(v):
                    raise ValueError(f"{path}: attribute {k} is {old!r} in the file, {v!r} given")
        self.steps = _Steps(self.group, tf.compress)
        self.path = path

    def _add(self, name, x, dtype=None, allowed=None):
        arr, dt = _to_numpy(x, dtype)
        if allowed and dt not in allowed:
            raise TypeError(f"{self.path}/{name}: dtype {dt} (allowed: {', '.join(allowed)})")
        self.steps.append(name, np.ascontiguousarray(arr), dt)
        return arr


class IndexerCapture(_Group):
    """/indexer/<layer>: logits [rows, cols], seq_lens [batch], pre_idx [batch, k], topk [rows, k]."""

    def __init__(self, tf, layer, k, compress_ratio, next_n):
        super().__init__(tf, f"/indexer/{layer}", dict(k=int(k), compress_ratio=int(compress_ratio), next_n=int(next_n)))
        self.k, self.next_n = int(k), int(next_n)

    def append(self, logits, seq_lens, pre_idx=None, topk=None, logits_dtype=None):
        """One decode step. logits: the kernel's input (cols padded to a fixed width per layer);
        topk: the production kernel's output (any order, -1 padding)."""
        lg, _ = _to_numpy(logits, logits_dtype)
        if lg.ndim != 2:
            raise ValueError(f"{self.path}/logits: expected [rows, cols], got shape {lg.shape}")
        self._add("logits", logits, logits_dtype, _FLOAT_DTYPES)
        self._add("seq_lens", seq_lens, "int32")
        for name, x in (("pre_idx", pre_idx), ("topk", topk)):
            present = self.steps.steps(name) > 0
            if x is None and present:
                raise ValueError(f"{self.path}/{name}: given in earlier steps, missing now")
            if x is not None:
                if not present and self.steps.steps("logits") > 1:
                    raise ValueError(f"{self.path}/{name}: must be given from the first step on")
                self._add(name, x, "int32")


class MergeCapture(_Group):
    """/merge/<name>: v_partial [splits, tokens, heads, D], lse_partial [splits, tokens, heads]
    (natural log), num_splits [tokens], sink [heads], captured v [tokens, heads, D], lse [tokens, heads]."""

    def __init__(self, tf, name, scopes=None, sink=None):
        super().__init__(tf, f"/merge/{name}", dict(lse_base="e", scopes=",".join(scopes) if scopes else None))
        if sink is not None and "sink" not in self.group:
            s, _ = _to_numpy(sink, "float32")
            self.group.create_dataset("sink", data=s.astype(np.float32), track_times=False)

    def append(self, v_partial, lse_partial, num_splits=None, v=None, lse=None, v_dtype=None):
        self._add("v_partial", v_partial, v_dtype, ("float32", "bfloat16"))
        self._add("lse_partial", lse_partial, "float32")
        for name, x, dt in (("num_splits", num_splits, "int32"), ("v", v, v_dtype), ("lse", lse, "float32")):
            if x is not None:
                self._add(name, x, dt)


def compressor_state_base(kv_len, next_n, compress_ratio):
    """First absolute position of the state window (SCHEMA.md)."""
    first = (int(kv_len) - next_n) // compress_ratio - (1 if compress_ratio == 4 else 0)
    return compress_ratio * max(0, first)


def state_window_from_pages(paged, block_table, kv_len, next_n, compress_ratio):
    """Extract one request's state window [W, SD] from a paged state [blocks, page, SD] and
    its block table [max_blocks]; positions at or after kv_len - next_n are zero."""
    paged = _to_numpy(paged)[0]
    table = _to_numpy(block_table)[0]
    page = paged.shape[1]
    w = 2 * compress_ratio if compress_ratio == 4 else compress_ratio
    base = compressor_state_base(kv_len, next_n, compress_ratio)
    out = np.zeros((w, paged.shape[2]), dtype=paged.dtype)
    for j in range(w):
        p = base + j
        if p >= kv_len - next_n:
            break
        out[j] = paged[table[p // page], p % page]
    return out


class CompressorCapture(_Group):
    """/compressor/<name>: see traces/SCHEMA.md. state_kv/state_score: [batch, W, SD] windows
    (use state_window_from_pages per request), or pass paged=(paged_kv, paged_score,
    block_table_kv, block_table_score) and the helper extracts them."""

    def __init__(self, tf, name, head_dim, compress_ratio, next_n, ape, kv_dtype="bfloat16",
                 state_dtype="float32", out_dtype="bfloat16"):
        super().__init__(tf, f"/compressor/{name}", dict(head_dim=int(head_dim), compress_ratio=int(compress_ratio),
                                                          next_n=int(next_n), kv_dtype=kv_dtype,
                                                          state_dtype=state_dtype, out_dtype=out_dtype))
        self.cr, self.nn = int(compress_ratio), int(next_n)
        self.kv_dtype, self.state_dtype, self.out_dtype = kv_dtype, state_dtype, out_dtype
        if "ape" not in self.group:
            a, _ = _to_numpy(ape, "float32")
            self.group.create_dataset("ape", data=a.astype(np.float32), track_times=False)

    def append(self, kv_score, kv_len, state_kv=None, state_score=None, paged=None, out=None,
               new_state_kv=None, new_state_score=None):
        kv_len_np = _to_numpy(kv_len, "int32")[0].reshape(-1)
        if paged is not None:
            pk, ps, tk, ts = paged
            tk, ts = _to_numpy(tk)[0], _to_numpy(ts)[0]
            state_kv = np.stack([state_window_from_pages(pk, tk[b], kv_len_np[b], self.nn, self.cr) for b in range(len(kv_len_np))])
            state_score = np.stack([state_window_from_pages(ps, ts[b], kv_len_np[b], self.nn, self.cr) for b in range(len(kv_len_np))])
        state_base = np.array([compressor_state_base(k, self.nn, self.cr) for k in kv_len_np], dtype=np.int32)
        sd = self.state_dtype
        self._add("kv_score", kv_score, self.kv_dtype, (self.kv_dtype,))
        self._add("kv_len", kv_len_np, "int32")
        self._add("state_base", state_base, "int32")
        self._add("state_kv", state_kv, sd, (sd,))
        self._add("state_score", state_score, sd, (sd,))
        if out is not None:
            self._add("out", out, self.out_dtype, (self.out_dtype,))
        if new_state_kv is not None:
            self._add("new_state_kv", new_state_kv, sd, (sd,))
            self._add("new_state_score", new_state_score, sd, (sd,))


class TraceFile:
    """A trace file opened for capture. mode "w" creates (truncates), "a" appends to an
    existing trace (its root attributes are kept)."""

    def __init__(self, path, model="unknown", mode="w", notes="", seed=None, producer=PRODUCER, compress=True):
        if mode not in ("w", "a"):
            raise ValueError("mode must be 'w' or 'a'")
        existing = mode == "a" and os.path.exists(path)
        self.file = h5py.File(path, mode, libver=("v110", "v110") if not existing else None)
        self.compress = compress
        if existing:
            fmt = self.file.attrs.get("format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            ver = int(self.file.attrs.get("format_version", 0))
            if fmt != FORMAT or ver > FORMAT_VERSION:
                raise ValueError(f"{path}: not a dsv4lab trace of format version <= {FORMAT_VERSION}")
        else:
            _str_attr(self.file, "format", FORMAT)
            self.file.attrs.create("format_version", np.int64(FORMAT_VERSION))
            _str_attr(self.file, "producer", producer)
            _str_attr(self.file, "model", model)
            if seed is not None:
                self.file.attrs.create("seed", np.int64(seed))
            if notes:
                _str_attr(self.file, "notes", notes)

    def indexer(self, layer, k, compress_ratio, next_n=1):
        return IndexerCapture(self, layer, k, compress_ratio, next_n)

    def merge(self, name, scopes=None, sink=None):
        return MergeCapture(self, name, scopes, sink)

    def compressor(self, name, head_dim, compress_ratio, next_n, ape, kv_dtype="bfloat16", state_dtype="float32",
                   out_dtype="bfloat16"):
        return CompressorCapture(self, name, head_dim, compress_ratio, next_n, ape, kv_dtype, state_dtype, out_dtype)

    def close(self):
        if self.file:
            self.file.close()
            self.file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

"""Timing helpers of the PyTorch peer scripts, the Python side of gpu/bench/bench_util.cuh:
CUDA-event median with warm-up, L2-defeating rotation count, and the device header of the
bench JSON (name, SM count, L2 bytes, measured copy bandwidth)."""


def require_torch_cuda(script):
    """torch, when it imports and sees a CUDA device; otherwise a one-line error and exit 2."""
    import sys
    try:
        import torch
    except ImportError:
        print(f"{script} needs torch", file=sys.stderr)
        sys.exit(2)
    if not torch.cuda.is_available():
        print(f"{script} needs a CUDA device", file=sys.stderr)
        sys.exit(2)
    return torch


def median_us(fn, warmup=10, iters=100):
    """Median time in microseconds of fn(i): each call between its own pair of CUDA events,
    all enqueued behind a GPU sleep that outlasts their submission, so that the calls run back
    to back and each pair measures GPU time (host launch overhead not counted), as median_us
    in bench_util.cuh does with its stream hold. DSV4LAB_BENCH_TIMING=paced: no sleep."""
    import os
    import time
    import torch
    fn(0)  # first call apart: it may load kernels
    t0 = time.perf_counter()
    for i in range(1, warmup):
        fn(i)
    host_s = (time.perf_counter() - t0) / max(warmup - 1, 1)  # host time per call, at most
    torch.cuda.synchronize()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    if os.environ.get("DSV4LAB_BENCH_TIMING") != "paced":
        # Twice the expected submission time (calls plus 20 us of events each) and 1 ms, in
        # clocks at 2 GHz (at a lower clock the sleep only lasts longer).
        torch.cuda._sleep(int(2e9 * (2.0 * iters * (host_s + 20e-6) + 1e-3)))
    for i, (a, b) in enumerate(ev):
        a.record()
        fn(warmup + i)
        b.record()
    torch.cuda.synchronize()
    times = sorted(a.elapsed_time(b) * 1e3 for a, b in ev)
    return times[len(times) // 2]


def rotation_count(bytes_per_copy, l2):
    """Input copies to rotate through so that together they exceed twice the L2."""
    return int(min(max(2 * l2 // max(int(bytes_per_copy), 1) + 1, 1), 64))


def device_json():
    """The bench JSON's device header; copy bandwidth counts bytes read plus written (1 GiB)."""
    import torch
    p = torch.cuda.get_device_properties(0)
    n = 1 << 30
    src = torch.ones(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    us = median_us(lambda i: dst.copy_(src), 3, 20)
    del src, dst
    return {"name": p.name, "sm_count": p.multi_processor_count,
            "l2_bytes": int(getattr(p, "L2_cache_size", 0)), "copy_bandwidth_GBps": 2.0 * n / (us * 1e-6) / 1e9}

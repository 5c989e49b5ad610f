"""Deterministic benchmark inputs, identical to gpu/bench/bench_util.cuh (splitmix64 of
(seed, index), 24 random bits -> float32 in [0, 1)), so a peer script times exactly the
inputs our kernel was timed on."""
import numpy as np

_M = (1 << 64) - 1


def mix(seed, idx):
    """splitmix64 of (seed, idx) for a uint64 index array (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.uint64((seed * 0x9E3779B97F4A7C15) & _M) + idx.astype(np.uint64) + np.uint64(0x632BE59BD9B4E019)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform01(seed, n):
    return (mix(seed, np.arange(n, dtype=np.uint64)) >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def fill_uniform(seed, n, lo, hi):
    """lo + (hi - lo) * u in float32, the same rounding as the C++ fill_uniform."""
    lo32, span = np.float32(lo), np.float32(np.float32(hi) - np.float32(lo))
    return lo32 + span * uniform01(seed, n)

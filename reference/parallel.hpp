// Row-parallel loops for the CPU references. Threads = DSV4LAB_THREADS or the
// hardware concurrency. Work is split into contiguous chunks, so results never depend
// on the thread count (each row is computed by exactly one thread, independently).
#pragma once

#include <cstddef>
#include <functional>

namespace dsv4 {

/// Number of worker threads the references use.
unsigned worker_threads();

/// Call fn(begin, end) on disjoint chunks covering [0, n), in parallel. The first
/// exception thrown by any chunk is rethrown after all chunks finished.
void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& fn,
                  std::size_t min_chunk = 1);

}  // namespace dsv4

// brainsim: what the native CPU kernels share (window_deliver.cc, dense_lif.cc): the steps-
// since-spike saturation, scratch growth, the split of a call's work over XLA's intra-op
// thread pool, and the dispatch on the float type. Built by brainsim/kernels/_native.py.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace brainsim_native {

namespace ffi = xla::ffi;

constexpr int64_t kSinceMax = int64_t(1) << 30;  // brainsim.models.SINCE_MAX

template <typename V>
typename V::value_type* at_least(V& v, int64_t size) {
  if (static_cast<int64_t>(v.size()) < size) v.resize(size);
  return v.data();
}

// Workers for a call: BRAINSIM_NATIVE_THREADS if set, else one per thread of XLA's intra-op
// pool once the call has ``work >= min_work`` to pay for the hand-over; never more than
// ``max_parts`` (the parts the work can be cut into).
inline int worker_count(int64_t pool_threads, int64_t max_parts, int64_t work,
                        int64_t min_work) {
  int64_t want = pool_threads;
  if (const char* env = std::getenv("BRAINSIM_NATIVE_THREADS")) {
    want = std::atoi(env);
  } else if (work < min_work) {
    want = 1;
  }
  return static_cast<int>(std::max<int64_t>(1, std::min(want, max_parts)));
}

// Runs work(t) for every part t < workers: part 0 here, the others scheduled on XLA's
// intra-op pool. A part is run by whoever claims it first: a pool thread, or this thread
// once its own part is done, so the call never waits for a part that no thread has started
// (the pool may be busy, e.g. with the calls of other CPU devices), only for running ones.
// The claims are shared with the scheduled tasks: a task that starts after this call
// returned finds its part claimed and touches nothing else (``work`` is only called for a
// claimed part, before this returns).
template <typename F>
void run_parts(ffi::ThreadPool& thread_pool, int workers, const F& work) {
  if (workers == 1) {
    work(0);
    return;
  }
  struct Claims {
    explicit Claims(int count) : taken(new std::atomic<bool>[count]) {
      for (int t = 0; t < count; ++t) taken[t].store(false);
    }
    std::unique_ptr<std::atomic<bool>[]> taken;
    std::atomic<int> done{0};
  };
  auto claims = std::make_shared<Claims>(workers);
  const F* work_p = &work;
  auto run = [claims, work_p](int t) {
    if (claims->taken[t].exchange(true)) return;
    (*work_p)(t);
    claims->done.fetch_add(1, std::memory_order_release);
  };
  for (int t = 1; t < workers; ++t) thread_pool.Schedule([run, t] { run(t); });
  for (int t = 0; t < workers; ++t) run(t);
  while (claims->done.load(std::memory_order_acquire) < workers) std::this_thread::yield();
}

// ``run(T{})`` for the float type T named by ``type`` (float32 or float64), else an error.
template <typename F>
ffi::Error by_float_type(ffi::DataType type, const char* kernel, const F& run) {
  if (type == ffi::DataType::F32) return run(float{});
  if (type == ffi::DataType::F64) return run(double{});
  return ffi::Error::InvalidArgument(std::string(kernel) + ": float32 or float64 only");
}

}  // namespace brainsim_native

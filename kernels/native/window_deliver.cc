// brainsim: one delay window's synaptic delivery on the CPU, as a single pass in C++.
//
// The plain-JAX form of the same work is steps 1-4 of `windowed_chunk`
// (brainsim/sim/_windowed.py); that file states why the scheme is exact. XLA:CPU runs it as
// some 25 whole-array passes (gathers, scatters, running sums), each bound by memory
// latency; here it is one loop over the events and one over the active entries.
//
// Per window:
//   1. the active set: the always-active entries first (inputs and recorded neurons, slots
//      0..K-1 in their given order), then the awake entries, then the targets of the
//      previous window's spikes (expanded over their CSR rows), deduplicated through a
//      stamped table (stamp = window + 1, so a zeroed table is empty);
//   2. every event adds its exact-solution terms (u, g, and the bound on the rise) to its
//      target's slot;
//   3. every active entry is brought forward from the window its row is valid for (lag
//      table). An entry that is not forced, not refractory and cannot reach threshold takes
//      the exact solution with its arrivals summed in; its row is written back here, and it
//      stays awake when it still could reach threshold. The others are *stepped*: listed
//      (entry, u, g, since) with their arrivals per step, for the JAX step loop.
//
// The trials are split in contiguous ranges over XLA's intra-op threads (each range owns
// its rows of the state and stamp tables); a trial's entries are handled in the same order
// whatever the split. Every formula keeps the operation order of the JAX form (the exact
// solution of brainsim.models.LIF.propagators: u' = u + (g c - u k_m), g' = g - g k_s);
// only the order in which one target's arrivals are summed may differ from XLA's scatter.
// Built and loaded by brainsim/kernels/_native.py (compiled on first use; the engine falls
// back to the JAX form when no compiler is present).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "window_deliver.h"

namespace ffi = xla::ffi;

namespace {

using namespace brainsim_native;

template <typename T>
ffi::Error Deliver(ffi::ThreadPool thread_pool, int64_t n, int64_t has_silent, int64_t has_removed,
                   ffi::AnyBuffer cells_in, ffi::Buffer<ffi::S32> stamps_in,
                   ffi::Buffer<ffi::S32> pending_flat, ffi::Buffer<ffi::S32> pending_k,
                   ffi::Buffer<ffi::S32> awake_flat, ffi::Buffer<ffi::S32> always_flat,
                   ffi::AnyBuffer indptr_buf, ffi::Buffer<ffi::S32> indices,
                   ffi::AnyBuffer counts_buf, ffi::AnyBuffer w_pre_buf,
                   ffi::Buffer<ffi::PRED> silent, ffi::Buffer<ffi::PRED> removed,
                   ffi::Buffer<ffi::S32> refractory, ffi::AnyBuffer lag_buf,
                   ffi::AnyBuffer arrival_buf, ffi::AnyBuffer consts_buf,
                   ffi::Buffer<ffi::S32> window, ffi::Result<ffi::AnyBuffer> cells_out,
                   ffi::Result<ffi::Buffer<ffi::S32>> stamps_out,
                   ffi::Result<ffi::Buffer<ffi::S32>> st_flat,
                   ffi::Result<ffi::AnyBuffer> st_vg, ffi::Result<ffi::Buffer<ffi::S32>> st_since,
                   ffi::Result<ffi::AnyBuffer> arrivals_out,
                   ffi::Result<ffi::Buffer<ffi::S32>> aw_out,
                   ffi::Result<ffi::Buffer<ffi::S32>> counts_out) {
  Inputs<T> in;
  in.cells = reinterpret_cast<T*>(cells_out->untyped_data());
  in.stamps = stamps_out->typed_data();
  if (cells_in.untyped_data() != cells_out->untyped_data()) {
    std::memcpy(in.cells, cells_in.untyped_data(), cells_in.size_bytes());
  }
  if (stamps_in.typed_data() != in.stamps) {
    std::memcpy(in.stamps, stamps_in.typed_data(), stamps_in.size_bytes());
  }
  in.n = n;
  in.none = stamps_in.dimensions()[0];  // one stamp row per (trial, neuron)
  in.n_trials = in.none / n;
  const int64_t k_always = always_flat.dimensions()[0];
  if (in.none != in.n_trials * n || k_always % in.n_trials != 0) {
    return ffi::Error::InvalidArgument("brainsim_window_deliver: inconsistent sizes");
  }
  in.per_trial_always = k_always / in.n_trials;
  in.w = window.typed_data()[0];
  in.pf = pending_flat.typed_data();
  in.pk = pending_k.typed_data();
  in.n_pending = pending_flat.dimensions()[0];
  in.awake = awake_flat.typed_data();
  in.n_awake_in = awake_flat.dimensions()[0];
  read_network(in, always_flat, indptr_buf, indices, counts_buf, w_pre_buf, silent, removed,
               refractory, lag_buf, arrival_buf, consts_buf, has_silent, has_removed);

  // steps 1-3, the trials split in contiguous ranges over the workers: a trial's entries
  // are handled in the same order whatever the split, so results do not depend on it
  // (on XLA's own intra-op threads: they are the ones otherwise waiting for work)
  const int workers = worker_count(thread_pool.num_threads(), in.n_trials,
                                   in.n_pending + in.n_awake_in + k_always, kParallelWork);
  std::vector<Part<T>>& pool = parts<T>(workers);
  auto range = [&](int t) { return in.n_trials * t / workers; };
  run_parts(thread_pool, workers, [&](int t) {
    deliver_part(in, range(t), range(t + 1), pool[t]);
  });

  // merge the parts' stepped entries into the budgeted lists (entries past a budget are
  // counted, not listed)
  const int64_t n_st = st_flat->dimensions()[0];
  const int64_t n_aw = aw_out->dimensions()[0];
  int32_t* stf = st_flat->typed_data();
  T* stvg = reinterpret_cast<T*>(st_vg->untyped_data());
  int32_t* sts = st_since->typed_data();
  int32_t* aw = aw_out->typed_data();
  T* arr = reinterpret_cast<T*>(arrivals_out->untyped_data());
  std::fill(stf, stf + n_st, static_cast<int32_t>(in.none));
  std::fill(stvg, stvg + 2 * n_st, T(0));
  std::fill(sts, sts + n_st, 0);
  std::fill(aw, aw + n_aw, static_cast<int32_t>(in.none));
  std::fill(arr, arr + in.d * n_st, T(0));
  int64_t n_awake = 0;
  const MergeCounts merged = merge_parts(
      in, pool, workers, n_st,
      [&](int64_t g, int32_t entry, T u, T gg, int32_t since) {
        stf[g] = entry;
        stvg[2 * g] = u;
        stvg[2 * g + 1] = gg;
        sts[g] = since;
      },
      [&](int32_t k, int32_t g, T weight) { arr[k * n_st + g] += weight; },
      [&](int32_t e) {
        if (n_awake < n_aw) aw[n_awake] = e;
        ++n_awake;
      });
  const int64_t n_active = merged.active, n_stepped = merged.stepped, n_events = merged.events;
  int32_t* cnt = counts_out->typed_data();
  cnt[0] = static_cast<int32_t>(n_active);
  cnt[1] = static_cast<int32_t>(n_stepped);
  cnt[2] = static_cast<int32_t>(std::min<int64_t>(n_events, INT32_MAX));
  cnt[3] = static_cast<int32_t>(n_awake);
  return ffi::Error::Success();
}

ffi::Error DeliverDispatch(ffi::ThreadPool thread_pool, int64_t n, int64_t has_silent, int64_t has_removed,
                           ffi::AnyBuffer cells_in, ffi::Buffer<ffi::S32> stamps_in,
                           ffi::Buffer<ffi::S32> pending_flat, ffi::Buffer<ffi::S32> pending_k,
                           ffi::Buffer<ffi::S32> awake_flat, ffi::Buffer<ffi::S32> always_flat,
                           ffi::AnyBuffer indptr, ffi::Buffer<ffi::S32> indices,
                           ffi::AnyBuffer counts, ffi::AnyBuffer w_pre,
                           ffi::Buffer<ffi::PRED> silent, ffi::Buffer<ffi::PRED> removed,
                           ffi::Buffer<ffi::S32> refractory, ffi::AnyBuffer lag,
                           ffi::AnyBuffer arrival, ffi::AnyBuffer consts,
                           ffi::Buffer<ffi::S32> window, ffi::Result<ffi::AnyBuffer> cells_out,
                           ffi::Result<ffi::Buffer<ffi::S32>> stamps_out,
                           ffi::Result<ffi::Buffer<ffi::S32>> st_flat,
                           ffi::Result<ffi::AnyBuffer> st_vg,
                           ffi::Result<ffi::Buffer<ffi::S32>> st_since,
                           ffi::Result<ffi::AnyBuffer> arrivals,
                           ffi::Result<ffi::Buffer<ffi::S32>> aw,
                           ffi::Result<ffi::Buffer<ffi::S32>> cnt) {
  const auto type = cells_in.element_type();
  for (auto other : {counts.element_type(), w_pre.element_type(), lag.element_type(),
                     arrival.element_type(), consts.element_type(), st_vg->element_type(),
                     arrivals->element_type(), cells_out->element_type()}) {
    if (other != type) {
      return ffi::Error::InvalidArgument("brainsim_window_deliver: mixed float types");
    }
  }
  if (stamps_in.dimensions().size() != 2 || stamps_in.dimensions()[1] != 2) {
    return ffi::Error::InvalidArgument("brainsim_window_deliver: stamps must be [entries, 2]");
  }
  return by_float_type(type, "brainsim_window_deliver", [&](auto zero) {
    return Deliver<decltype(zero)>(thread_pool, n, has_silent, has_removed, cells_in, stamps_in,
                                   pending_flat, pending_k, awake_flat, always_flat, indptr,
                                   indices, counts, w_pre, silent, removed, refractory, lag,
                                   arrival, consts, window, cells_out, stamps_out, st_flat,
                                   st_vg, st_since, arrivals, aw, cnt);
  });
}

// The dense-window stepper's delivery: the previous window's spikes expanded over their
// CSR rows into a full table of arrivals [D, trials x n] (the plain-JAX form is
// `window_events` and a scatter in brainsim/sim/_dense_window.py); the trials split over
// the workers as above, each zeroing and filling its own columns.
template <typename T>
ffi::Error DenseDeliver(ffi::ThreadPool thread_pool, int64_t n, int64_t has_silent,
                        int64_t has_removed, ffi::Buffer<ffi::S32> pending_flat,
                        ffi::Buffer<ffi::S32> pending_k, ffi::AnyBuffer indptr_buf,
                        ffi::Buffer<ffi::S32> indices, ffi::AnyBuffer counts_buf,
                        ffi::AnyBuffer w_pre_buf, ffi::Buffer<ffi::PRED> silent,
                        ffi::Buffer<ffi::PRED> removed, ffi::Result<ffi::AnyBuffer> arrivals,
                        ffi::Result<ffi::Buffer<ffi::S32>> n_events_out) {
  const int64_t d = arrivals->dimensions()[0];
  const int64_t none = arrivals->dimensions()[1];
  const int64_t n_trials = none / n;
  if (none != n_trials * n) {
    return ffi::Error::InvalidArgument("brainsim_dense_deliver: inconsistent sizes");
  }
  T* arr = reinterpret_cast<T*>(arrivals->untyped_data());
  const int32_t* pf = pending_flat.typed_data();
  const int32_t* pk = pending_k.typed_data();
  const int64_t n_pending = pending_flat.dimensions()[0];
  const int32_t* ind = indices.typed_data();
  const T* counts = reinterpret_cast<const T*>(counts_buf.untyped_data());
  const T* w_pre = reinterpret_cast<const T*>(w_pre_buf.untyped_data());
  const bool* sil = silent.typed_data();
  const bool* rem = removed.typed_data();
  const bool wide_ptr = indptr_buf.element_type() == ffi::DataType::S64;
  const int32_t* ptr32 = reinterpret_cast<const int32_t*>(indptr_buf.untyped_data());
  const int64_t* ptr64 = reinterpret_cast<const int64_t*>(indptr_buf.untyped_data());
  auto row_start = [&](int64_t i) -> int64_t { return wide_ptr ? ptr64[i] : ptr32[i]; };
  const int workers = worker_count(thread_pool.num_threads(), n_trials, n_pending, kParallelWork);
  std::vector<int64_t> events(workers, 0);
  run_parts(thread_pool, workers, [&](int t) {
    const int64_t lo_e = n_trials * t / workers * n, hi_e = n_trials * (t + 1) / workers * n;
    for (int64_t k = 0; k < d; ++k) std::fill(arr + k * none + lo_e, arr + k * none + hi_e, T(0));
    int64_t count = 0;
    for (int64_t j = 0; j < n_pending; ++j) {
      const int64_t q = pf[j];
      if (q < lo_e || q >= hi_e || (has_silent && sil[q])) continue;
      const int64_t i = q % n, base = q - i;
      const int64_t lo = row_start(i), hi = row_start(i + 1);
      const T wp = w_pre[i];
      T* row = arr + pk[j] * none + base;
      for (int64_t c = lo; c < hi; ++c) {
        const T wt = counts[c] * wp;
        if (!(has_removed && rem[base + ind[c]])) row[ind[c]] += wt;
      }
      count += hi - lo;
    }
    events[t] = count;
  });
  int64_t total = 0;
  for (int64_t e : events) total += e;
  n_events_out->typed_data()[0] = static_cast<int32_t>(std::min<int64_t>(total, INT32_MAX));
  return ffi::Error::Success();
}

ffi::Error DenseDeliverDispatch(ffi::ThreadPool thread_pool, int64_t n, int64_t has_silent,
                                int64_t has_removed, ffi::Buffer<ffi::S32> pending_flat,
                                ffi::Buffer<ffi::S32> pending_k, ffi::AnyBuffer indptr,
                                ffi::Buffer<ffi::S32> indices, ffi::AnyBuffer counts,
                                ffi::AnyBuffer w_pre, ffi::Buffer<ffi::PRED> silent,
                                ffi::Buffer<ffi::PRED> removed,
                                ffi::Result<ffi::AnyBuffer> arrivals,
                                ffi::Result<ffi::Buffer<ffi::S32>> n_events) {
  const auto type = arrivals->element_type();
  if (counts.element_type() != type || w_pre.element_type() != type) {
    return ffi::Error::InvalidArgument("brainsim_dense_deliver: mixed float types");
  }
  return by_float_type(type, "brainsim_dense_deliver", [&](auto zero) {
    return DenseDeliver<decltype(zero)>(thread_pool, n, has_silent, has_removed, pending_flat,
                                        pending_k, indptr, indices, counts, w_pre, silent,
                                        removed, arrivals, n_events);
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimWindowDeliver, DeliverDispatch,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<int64_t>("n_neurons")
                                  .Attr<int64_t>("has_silent")
                                  .Attr<int64_t>("has_removed")
                                  .Arg<ffi::AnyBuffer>()             // cells
                                  .Arg<ffi::Buffer<ffi::S32>>()      // stamps
                                  .Arg<ffi::Buffer<ffi::S32>>()      // pending_flat
                                  .Arg<ffi::Buffer<ffi::S32>>()      // pending_k
                                  .Arg<ffi::Buffer<ffi::S32>>()      // awake_flat
                                  .Arg<ffi::Buffer<ffi::S32>>()      // always_flat
                                  .Arg<ffi::AnyBuffer>()             // indptr
                                  .Arg<ffi::Buffer<ffi::S32>>()      // indices
                                  .Arg<ffi::AnyBuffer>()             // counts
                                  .Arg<ffi::AnyBuffer>()             // w_syn per presynaptic
                                  .Arg<ffi::Buffer<ffi::PRED>>()     // silent (outputs cut)
                                  .Arg<ffi::Buffer<ffi::PRED>>()     // removed
                                  .Arg<ffi::Buffer<ffi::S32>>()      // refractory steps
                                  .Arg<ffi::AnyBuffer>()             // lag table
                                  .Arg<ffi::AnyBuffer>()             // arrival table
                                  .Arg<ffi::AnyBuffer>()             // consts
                                  .Arg<ffi::Buffer<ffi::S32>>()      // window
                                  .Ret<ffi::AnyBuffer>()             // cells
                                  .Ret<ffi::Buffer<ffi::S32>>()      // stamps
                                  .Ret<ffi::Buffer<ffi::S32>>()      // stepped entries
                                  .Ret<ffi::AnyBuffer>()             // stepped (u, g)
                                  .Ret<ffi::Buffer<ffi::S32>>()      // stepped since
                                  .Ret<ffi::AnyBuffer>()             // arrivals [D, stepped]
                                  .Ret<ffi::Buffer<ffi::S32>>()      // awake (jumped ones)
                                  .Ret<ffi::Buffer<ffi::S32>>());    // counts

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimDenseDeliver, DenseDeliverDispatch,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<int64_t>("n_neurons")
                                  .Attr<int64_t>("has_silent")
                                  .Attr<int64_t>("has_removed")
                                  .Arg<ffi::Buffer<ffi::S32>>()   // pending_flat
                                  .Arg<ffi::Buffer<ffi::S32>>()   // pending_k
                                  .Arg<ffi::AnyBuffer>()          // indptr
                                  .Arg<ffi::Buffer<ffi::S32>>()   // indices
                                  .Arg<ffi::AnyBuffer>()          // counts
                                  .Arg<ffi::AnyBuffer>()          // w_syn per presynaptic
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // silent (outputs cut)
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // removed
                                  .Ret<ffi::AnyBuffer>()          // arrivals [D, trials x n]
                                  .Ret<ffi::Buffer<ffi::S32>>());  // events

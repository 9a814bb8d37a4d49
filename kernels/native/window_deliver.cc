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
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "common.h"

namespace ffi = xla::ffi;

namespace {

using namespace brainsim_native;

constexpr int64_t kAhead = 32;  // prefetch distance of the random accesses, in iterations

template <typename T>
using IntOf = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;

template <typename T>
inline int64_t bits_to_int(T x) {
  IntOf<T> i;
  std::memcpy(&i, &x, sizeof(T));
  return static_cast<int64_t>(i);
}

template <typename T>
inline T int_to_bits(int64_t v) {
  IntOf<T> i = static_cast<IntOf<T>>(v);
  T x;
  std::memcpy(&x, &i, sizeof(T));
  return x;
}

template <typename T>
struct Event {
  int32_t target;  // flat entry trial * n + neuron
  int32_t post;    // neuron
  int32_t k;       // arrival step within the window
  int32_t slot;    // active slot of the target
  T weight;        // mV
};

// The window's inputs, shared read-only by the workers (cells and stamps are written, each
// worker only the rows of its own trials).
template <typename T>
struct Inputs {
  int64_t n, none, d, lag_rows, n_trials, per_trial_always;
  bool has_silent, has_removed, wide_ptr, rise_table;
  int32_t w;
  T* cells;
  int32_t* stamps;
  const int32_t *pf, *pk, *awake, *always, *ind, *rfc, *ptr32;
  const int64_t* ptr64;
  int64_t n_pending, n_awake_in;
  const bool *sil, *rem;
  const T *lag, *arrival, *counts, *w_pre;
  T thr, c_window, peak, k_d, ks_d, c_d;

  int64_t row_start(int64_t i) const { return wide_ptr ? ptr64[i] : ptr32[i]; }
  bool sends(int64_t p) const { return p < none && !(has_silent && sil[p]); }
};

// One worker's share (a range of trials): scratch arrays, kept between calls (grown, never
// shrunk) so that a window allocates nothing, and its results.
template <typename T>
struct Part {
  std::vector<int32_t> act;     // active slot -> flat entry
  std::vector<int32_t> neuron;  // active slot -> neuron
  std::vector<T> acc;           // 3 per active slot: u_in, g_in, rise
  std::vector<int32_t> st_of;   // active slot -> stepped index in this part (-1: jumped)
  std::vector<Event<T>> events;
  std::vector<int32_t> st_entry, st_since, st_global, awake;
  std::vector<T> st_vg;
  int64_t n_active = 0, n_events = 0, n_always = 0;
};

// Steps 1-3 for the trials [b0, b1).
template <typename T>
void deliver_part(const Inputs<T>& in, int64_t b0, int64_t b1, Part<T>& p) {
  const int64_t n = in.n, lo_e = b0 * n, hi_e = b1 * n;
  const int32_t stamp = in.w + 1;
  auto own = [&](int64_t e) { return e >= lo_e && e < hi_e; };
  int64_t n_events = 0;
  for (int64_t j = 0; j < in.n_pending; ++j) {
    const int64_t q = in.pf[j];
    if (own(q) && in.sends(q)) n_events += in.row_start(q % n + 1) - in.row_start(q % n);
  }
  p.n_always = (b1 - b0) * in.per_trial_always;
  const int64_t max_active = p.n_always + in.n_awake_in + n_events;
  int32_t* act = at_least(p.act, max_active);
  int32_t* neuron = at_least(p.neuron, max_active);
  T* acc = at_least(p.acc, 3 * max_active);
  Event<T>* ev = at_least(p.events, n_events);
  int32_t* stamps = in.stamps;
  int64_t n_active = 0;
  auto slot_of = [&](int64_t e, int64_t i) -> int32_t {
    int32_t* row = stamps + 2 * e;
    if (row[0] == stamp) return row[1];
    const int32_t slot = static_cast<int32_t>(n_active++);
    row[0] = stamp;
    row[1] = slot;
    act[slot] = static_cast<int32_t>(e);
    neuron[slot] = static_cast<int32_t>(i);
    acc[3 * slot] = acc[3 * slot + 1] = acc[3 * slot + 2] = T(0);
    return slot;
  };

  // 1. the active set: always-active entries first, then awake entries, then event targets
  for (int64_t j = b0 * in.per_trial_always; j < b1 * in.per_trial_always; ++j) {
    slot_of(in.always[j], in.always[j] % n);
  }
  for (int64_t j = 0; j < in.n_awake_in; ++j) {
    if (own(in.awake[j])) slot_of(in.awake[j], in.awake[j] % n);
  }
  // 2. the previous window's spikes -> synaptic events (a sequential pass over their CSR
  // rows), then summed per target. The random accesses (stamp table, cell rows) are
  // prefetched some iterations ahead: their values decide branches, and without prefetch
  // each mispredicted branch would wait for its cache miss in turn.
  int64_t m = 0;
  for (int64_t j = 0; j < in.n_pending; ++j) {
    const int64_t q = in.pf[j];
    if (!own(q) || !in.sends(q)) continue;
    const int64_t i = q % n, base = q - i;
    const int64_t lo = in.row_start(i), hi = in.row_start(i + 1);
    const T wp = in.w_pre[i];
    for (int64_t c = lo; c < hi; ++c, ++m) {
      ev[m].target = static_cast<int32_t>(base + in.ind[c]);
      ev[m].post = in.ind[c];
      ev[m].k = in.pk[j];
      ev[m].weight = in.counts[c] * wp;
    }
  }
  for (int64_t j = 0; j < n_events; ++j) {
    if (j + kAhead < n_events) __builtin_prefetch(stamps + 2 * int64_t(ev[j + kAhead].target), 1);
    Event<T>& e = ev[j];
    if (in.has_removed && in.rem[e.target]) e.weight = T(0);
    const T wt = e.weight;
    const T* a = in.arrival + 4 * e.k;  // (k_m, k_s, c, c_max) over the steps left
    const T ks_r = a[1], c_r = a[2];
    const T c_rise = in.rise_table ? a[3] : in.peak;
    e.slot = slot_of(e.target, e.post);
    T* sum = acc + 3 * e.slot;
    sum[0] += wt * c_r;
    sum[1] += wt - wt * ks_r;
    sum[2] += std::max(wt, T(0)) * c_rise;
  }
  p.n_active = n_active;
  p.n_events = n_events;

  // 3. bring every active entry forward; jump the quiet ones, list the stepped ones
  int32_t* st_of = at_least(p.st_of, n_active);
  p.st_entry.clear();
  p.st_since.clear();
  p.st_vg.clear();
  p.awake.clear();
  const T next_valid = int_to_bits<T>(in.w + 1);
  for (int64_t slot = 0; slot < n_active; ++slot) {
    if (slot + kAhead < n_active) {
      __builtin_prefetch(in.cells + 4 * int64_t(act[slot + kAhead]), 1);
    }
    const int64_t e = act[slot];
    const int64_t i = neuron[slot];
    T* row = in.cells + 4 * e;
    const T u0 = row[0], g0 = row[1];
    const int64_t since0 = bits_to_int(row[2]);
    const int64_t lag_w = in.w - bits_to_int(row[3]);
    T va = u0, ga = g0;
    if (lag_w > 0) {
      const T* l = in.lag + 3 * std::min<int64_t>(lag_w, in.lag_rows - 1);
      va = u0 + (g0 * l[2] - u0 * l[0]);
      ga = g0 - g0 * l[1];
    }
    const int64_t sa = std::min<int64_t>(since0 + lag_w * in.d, kSinceMax);
    const T* sum = acc + 3 * slot;
    const T reach = std::max(va, T(0)) + std::max(ga, T(0)) * in.c_window + sum[2];
    if (slot < p.n_always || sa < in.rfc[i] || reach > in.thr) {
      st_of[slot] = static_cast<int32_t>(p.st_entry.size());
      p.st_entry.push_back(static_cast<int32_t>(e));
      p.st_vg.push_back(va);
      p.st_vg.push_back(ga);
      p.st_since.push_back(static_cast<int32_t>(sa));
      continue;
    }
    st_of[slot] = -1;
    const T v_end = va + (ga * in.c_d - va * in.k_d) + sum[0];
    const T g_end = ga - ga * in.ks_d + sum[1];
    const int64_t s_end = std::min<int64_t>(sa + in.d, kSinceMax);
    row[0] = v_end;
    row[1] = g_end;
    row[2] = int_to_bits<T>(s_end);
    row[3] = next_valid;
    const T could = std::max(v_end, T(0)) + std::max(g_end, T(0)) * in.peak;
    if (s_end < in.rfc[i] || could > in.thr) p.awake.push_back(static_cast<int32_t>(e));
  }
}

template <typename T>
std::vector<Part<T>>& parts(size_t count) {
  // per calling thread: concurrent calls (several CPU devices) never share scratch
  thread_local std::vector<Part<T>> pool;
  if (pool.size() < count) pool.resize(count);
  return pool;
}

// Windows with fewer list entries than this run on the calling thread alone.
constexpr int64_t kParallelWork = 2048;

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
  in.d = arrival_buf.dimensions()[0];
  in.lag_rows = lag_buf.dimensions()[0];
  in.w = window.typed_data()[0];
  in.has_silent = has_silent != 0;
  in.has_removed = has_removed != 0;
  in.pf = pending_flat.typed_data();
  in.pk = pending_k.typed_data();
  in.n_pending = pending_flat.dimensions()[0];
  in.awake = awake_flat.typed_data();
  in.n_awake_in = awake_flat.dimensions()[0];
  in.always = always_flat.typed_data();
  in.ind = indices.typed_data();
  in.rfc = refractory.typed_data();
  in.wide_ptr = indptr_buf.element_type() == ffi::DataType::S64;
  in.ptr32 = reinterpret_cast<const int32_t*>(indptr_buf.untyped_data());
  in.ptr64 = reinterpret_cast<const int64_t*>(indptr_buf.untyped_data());
  in.sil = silent.typed_data();
  in.rem = removed.typed_data();
  in.lag = reinterpret_cast<const T*>(lag_buf.untyped_data());
  in.arrival = reinterpret_cast<const T*>(arrival_buf.untyped_data());
  in.counts = reinterpret_cast<const T*>(counts_buf.untyped_data());
  in.w_pre = reinterpret_cast<const T*>(w_pre_buf.untyped_data());
  // consts: threshold (v_th - tol), c_window, peak, k_d, ks_d, c_d, use_rise_table
  const T* consts = reinterpret_cast<const T*>(consts_buf.untyped_data());
  in.thr = consts[0];
  in.c_window = consts[1];
  in.peak = consts[2];
  in.k_d = consts[3];
  in.ks_d = consts[4];
  in.c_d = consts[5];
  in.rise_table = consts[6] != T(0);

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

  // merge: always-active entries at their place in always_flat (slots 0..K-1), then the
  // other stepped entries part by part; entries past the budget are counted, not listed
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
  int64_t n_active = 0, n_events = 0, n_stepped = 0, n_awake = 0, next_other = k_always;
  for (int t = 0; t < workers; ++t) {
    Part<T>& p = pool[t];
    const int64_t count = static_cast<int64_t>(p.st_entry.size());
    int32_t* global = at_least(p.st_global, count);
    const int64_t first_always = range(t) * in.per_trial_always;
    for (int64_t j = 0; j < count; ++j) {
      const int64_t g = j < p.n_always ? first_always + j : next_other++;
      global[j] = g < n_st ? static_cast<int32_t>(g) : -1;
      if (g >= n_st) continue;
      stf[g] = p.st_entry[j];
      stvg[2 * g] = p.st_vg[2 * j];
      stvg[2 * g + 1] = p.st_vg[2 * j + 1];
      sts[g] = p.st_since[j];
    }
    // 4. the stepped entries' arrivals, per step
    for (int64_t j = 0; j < p.n_events; ++j) {
      const Event<T>& e = p.events[j];
      const int32_t st = p.st_of[e.slot];
      if (st >= 0 && global[st] >= 0) arr[e.k * n_st + global[st]] += e.weight;
    }
    for (int32_t e : p.awake) {
      if (n_awake < n_aw) aw[n_awake] = e;
      ++n_awake;
    }
    n_active += p.n_active;
    n_events += p.n_events;
    n_stepped += count;
  }
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

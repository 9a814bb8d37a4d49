// brainsim: one delay window's synaptic delivery for the windowed stepper (steps 1-3 of
// `windowed_chunk`, brainsim/sim/_windowed.py; see window_deliver.cc), and the merge of the
// workers' stepped entries into one list. Shared by the per-window kernel
// (window_deliver.cc) and the windowed native chunk (windowed_lif.cc).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common.h"

namespace brainsim_native {

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

// The network, the exact-jump tables and the delivery's constants of `in` from the
// kernels' buffers (the same arguments of brainsim_window_deliver and the windowed native
// chunk). consts: threshold (v_th - tol), c_window, peak, k_d, ks_d, c_d, use_rise_table.
template <typename T>
void read_network(Inputs<T>& in, ffi::Buffer<ffi::S32> always_flat, ffi::AnyBuffer indptr_buf,
                  ffi::Buffer<ffi::S32> indices, ffi::AnyBuffer counts_buf,
                  ffi::AnyBuffer w_pre_buf, ffi::Buffer<ffi::PRED> silent,
                  ffi::Buffer<ffi::PRED> removed, ffi::Buffer<ffi::S32> refractory,
                  ffi::AnyBuffer lag_buf, ffi::AnyBuffer arrival_buf, ffi::AnyBuffer consts_buf,
                  int64_t has_silent, int64_t has_removed) {
  in.d = arrival_buf.dimensions()[0];
  in.lag_rows = lag_buf.dimensions()[0];
  in.has_silent = has_silent != 0;
  in.has_removed = has_removed != 0;
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
  const T* consts = reinterpret_cast<const T*>(consts_buf.untyped_data());
  in.thr = consts[0];
  in.c_window = consts[1];
  in.peak = consts[2];
  in.k_d = consts[3];
  in.ks_d = consts[4];
  in.c_d = consts[5];
  in.rise_table = consts[6] != T(0);
}

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
  int64_t nonfinite = 0;  // jumped rows left NaN or infinite
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
  p.nonfinite = 0;
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
    p.nonfinite += !(std::isfinite(v_end) && std::isfinite(g_end));
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

// The stepped entries of a window, every worker's merged (the slots of
// brainsim_window_deliver): always-active entries at their place in always_flat (slots
// 0..K-1), then the other stepped entries part by part. At most ``n_st`` are listed (the
// others counted): ``list(slot, entry, u, g, since)`` for each, ``arrive(k, slot, weight)``
// for each synaptic event onto one (in event order: the sums round as the JAX form's), and
// ``awake(entry)`` for each entry the jumps left awake, part by part.
struct MergeCounts {
  int64_t active = 0, stepped = 0, events = 0, nonfinite = 0;
};

template <typename T, typename List, typename Arrive, typename Awake>
MergeCounts merge_parts(const Inputs<T>& in, std::vector<Part<T>>& pool, int workers,
                        int64_t n_st, const List& list, const Arrive& arrive,
                        const Awake& awake) {
  MergeCounts out;
  const int64_t k_always = in.n_trials * in.per_trial_always;
  int64_t next_other = k_always;
  for (int t = 0; t < workers; ++t) {
    Part<T>& p = pool[t];
    const int64_t count = static_cast<int64_t>(p.st_entry.size());
    int32_t* global = at_least(p.st_global, count);
    const int64_t first_always = in.n_trials * t / workers * in.per_trial_always;
    for (int64_t j = 0; j < count; ++j) {
      const int64_t g = j < p.n_always ? first_always + j : next_other++;
      global[j] = g < n_st ? static_cast<int32_t>(g) : -1;
      if (g < n_st) list(g, p.st_entry[j], p.st_vg[2 * j], p.st_vg[2 * j + 1], p.st_since[j]);
    }
    // 4. the stepped entries' arrivals, per step
    for (int64_t j = 0; j < p.n_events; ++j) {
      const Event<T>& e = p.events[j];
      const int32_t st = p.st_of[e.slot];
      if (st >= 0 && global[st] >= 0) arrive(e.k, global[st], e.weight);
    }
    for (int32_t e : p.awake) awake(e);
    out.active += p.n_active;
    out.events += p.n_events;
    out.stepped += count;
    out.nonfinite += p.nonfinite;
  }
  return out;
}

}  // namespace brainsim_native

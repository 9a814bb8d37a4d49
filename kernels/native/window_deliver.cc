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
// Arithmetic is written in the same order as the JAX form, so both round alike.
// Built and loaded by brainsim/kernels/_native.py (compiled on first use; falls back to the
// JAX form when no compiler is present).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kSinceMax = int64_t(1) << 30;  // brainsim.models.SINCE_MAX
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

// Scratch arrays, kept between calls (grown, never shrunk) so that a window allocates nothing.
template <typename T>
struct Scratch {
  std::vector<int32_t> act;     // active slot -> flat entry
  std::vector<int32_t> neuron;  // active slot -> neuron
  std::vector<T> acc;           // 3 per active slot: u_in, g_in, rise
  std::vector<int32_t> st_of;   // active slot -> stepped slot (-1: not stepped)
  std::vector<Event<T>> events;
};

template <typename T>
Scratch<T>& scratch() {
  thread_local Scratch<T> s;
  return s;
}

template <typename V>
typename V::value_type* at_least(V& v, int64_t size) {
  if (static_cast<int64_t>(v.size()) < size) v.resize(size);
  return v.data();
}

template <typename T>
ffi::Error Deliver(int64_t n, int64_t has_silent, int64_t has_removed,
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
  T* cells = reinterpret_cast<T*>(cells_out->untyped_data());
  int32_t* stamps = stamps_out->typed_data();
  if (cells_in.untyped_data() != cells_out->untyped_data()) {
    std::memcpy(cells, cells_in.untyped_data(), cells_in.size_bytes());
  }
  if (stamps_in.typed_data() != stamps) {
    std::memcpy(stamps, stamps_in.typed_data(), stamps_in.size_bytes());
  }
  const int64_t lag_rows = lag_buf.dimensions()[0];
  const int64_t d = arrival_buf.dimensions()[0];
  const int64_t n_st = st_flat->dimensions()[0];
  const int64_t n_aw = aw_out->dimensions()[0];
  const int64_t k_always = always_flat.dimensions()[0];
  const int64_t none = stamps_in.dimensions()[0];  // one stamp row per (trial, neuron)
  const int32_t w = window.typed_data()[0];
  const int32_t stamp = w + 1;

  const T* lag = reinterpret_cast<const T*>(lag_buf.untyped_data());
  const T* arrival = reinterpret_cast<const T*>(arrival_buf.untyped_data());
  const T* counts = reinterpret_cast<const T*>(counts_buf.untyped_data());
  const T* w_pre = reinterpret_cast<const T*>(w_pre_buf.untyped_data());
  const T* consts = reinterpret_cast<const T*>(consts_buf.untyped_data());
  // consts: threshold (v_th - tol), c_window, peak, k_d, ks_d, c_d, use_rise_table
  const T thr = consts[0], c_window = consts[1], peak = consts[2];
  const T k_d = consts[3], ks_d = consts[4], c_d = consts[5];
  const bool rise_table = consts[6] != T(0);
  const bool* sil = silent.typed_data();
  const bool* rem = removed.typed_data();
  const int32_t* rfc = refractory.typed_data();
  const int32_t* ind = indices.typed_data();
  const bool wide_ptr = indptr_buf.element_type() == ffi::DataType::S64;
  const int32_t* ptr32 = reinterpret_cast<const int32_t*>(indptr_buf.untyped_data());
  const int64_t* ptr64 = reinterpret_cast<const int64_t*>(indptr_buf.untyped_data());
  auto row_start = [&](int64_t i) -> int64_t { return wide_ptr ? ptr64[i] : ptr32[i]; };

  const int32_t* pf = pending_flat.typed_data();
  const int32_t* pk = pending_k.typed_data();
  const int64_t n_pending = pending_flat.dimensions()[0];
  const int32_t* always = always_flat.typed_data();
  const int32_t* awake = awake_flat.typed_data();
  const int64_t n_awake_in = awake_flat.dimensions()[0];
  auto sends = [&](int64_t p) { return p < none && !(has_silent && sil[p]); };
  int64_t n_events = 0;
  for (int64_t j = 0; j < n_pending; ++j) {
    if (sends(pf[j])) n_events += row_start(pf[j] % n + 1) - row_start(pf[j] % n);
  }
  Scratch<T>& s = scratch<T>();
  const int64_t max_active = k_always + n_awake_in + n_events;
  int32_t* act = at_least(s.act, max_active);
  int32_t* neuron = at_least(s.neuron, max_active);
  T* acc = at_least(s.acc, 3 * max_active);
  Event<T>* ev = at_least(s.events, n_events);
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

  // 1. the active set: always-active entries (slots 0..K-1), awake entries, event targets
  for (int64_t j = 0; j < k_always; ++j) slot_of(always[j], always[j] % n);
  for (int64_t j = 0; j < n_awake_in; ++j) {
    if (awake[j] < none) slot_of(awake[j], awake[j] % n);
  }
  // 2. the previous window's spikes -> synaptic events (a sequential pass over their CSR
  // rows), then summed per target. The random accesses (stamp table, cell rows) are
  // prefetched some iterations ahead: their values decide branches, and without prefetch
  // each mispredicted branch would wait for its cache miss in turn.
  int64_t m = 0;
  for (int64_t j = 0; j < n_pending; ++j) {
    const int64_t p = pf[j];
    if (!sends(p)) continue;
    const int64_t i = p % n, base = p - i;
    const int64_t lo = row_start(i), hi = row_start(i + 1);
    const T wp = w_pre[i];
    for (int64_t c = lo; c < hi; ++c, ++m) {
      ev[m].target = static_cast<int32_t>(base + ind[c]);
      ev[m].post = ind[c];
      ev[m].k = pk[j];
      ev[m].weight = counts[c] * wp;
    }
  }
  for (int64_t j = 0; j < n_events; ++j) {
    if (j + kAhead < n_events) __builtin_prefetch(stamps + 2 * int64_t(ev[j + kAhead].target), 1);
    Event<T>& e = ev[j];
    if (has_removed && rem[e.target]) e.weight = T(0);
    const T wt = e.weight;
    const T* a = arrival + 4 * e.k;  // (k_m, k_s, c, c_max) over the steps left
    const T ks_r = a[1], c_r = a[2];
    const T c_rise = rise_table ? a[3] : peak;
    e.slot = slot_of(e.target, e.post);
    T* sum = acc + 3 * e.slot;
    sum[0] += wt * c_r;
    sum[1] += wt - wt * ks_r;
    sum[2] += std::max(wt, T(0)) * c_rise;
  }

  // 3. bring every active entry forward; jump the quiet ones, list the stepped ones
  int32_t* st_of = at_least(s.st_of, n_active);
  int32_t* stf = st_flat->typed_data();
  T* stvg = reinterpret_cast<T*>(st_vg->untyped_data());
  int32_t* sts = st_since->typed_data();
  int32_t* aw = aw_out->typed_data();
  std::fill(stf, stf + n_st, static_cast<int32_t>(none));
  std::fill(stvg, stvg + 2 * n_st, T(0));
  std::fill(sts, sts + n_st, 0);
  std::fill(aw, aw + n_aw, static_cast<int32_t>(none));
  int64_t n_stepped = 0, n_awake = 0;
  const T next_valid = int_to_bits<T>(w + 1);
  for (int64_t slot = 0; slot < n_active; ++slot) {
    if (slot + kAhead < n_active) __builtin_prefetch(cells + 4 * int64_t(act[slot + kAhead]), 1);
    const int64_t e = act[slot];
    const int64_t i = neuron[slot];
    st_of[slot] = -1;
    T* row = cells + 4 * e;
    const T u0 = row[0], g0 = row[1];
    const int64_t since0 = bits_to_int(row[2]);
    const int64_t valid0 = bits_to_int(row[3]);
    const int64_t lag_w = w - valid0;
    T va = u0, ga = g0;
    if (lag_w > 0) {
      const T* l = lag + 3 * std::min<int64_t>(lag_w, lag_rows - 1);
      va = u0 + (g0 * l[2] - u0 * l[0]);
      ga = g0 - g0 * l[1];
    }
    const int64_t sa = std::min<int64_t>(since0 + lag_w * d, kSinceMax);
    const T* sum = acc + 3 * slot;
    const T reach = std::max(va, T(0)) + std::max(ga, T(0)) * c_window + sum[2];
    const bool stepped = slot < k_always || sa < rfc[i] || reach > thr;
    if (stepped) {
      const int64_t st = n_stepped++;
      if (st < n_st) {
        st_of[slot] = static_cast<int32_t>(st);
        stf[st] = static_cast<int32_t>(e);
        stvg[2 * st] = va;
        stvg[2 * st + 1] = ga;
        sts[st] = static_cast<int32_t>(sa);
      }
      continue;
    }
    const T v_end = va + (ga * c_d - va * k_d) + sum[0];
    const T g_end = ga - ga * ks_d + sum[1];
    const int64_t s_end = std::min<int64_t>(sa + d, kSinceMax);
    row[0] = v_end;
    row[1] = g_end;
    row[2] = int_to_bits<T>(s_end);
    row[3] = next_valid;
    const T could = std::max(v_end, T(0)) + std::max(g_end, T(0)) * peak;
    if (s_end < rfc[i] || could > thr) {
      if (n_awake < n_aw) aw[n_awake] = static_cast<int32_t>(e);
      ++n_awake;
    }
  }

  // 4. the stepped entries' arrivals, per step
  T* arr = reinterpret_cast<T*>(arrivals_out->untyped_data());
  std::fill(arr, arr + d * n_st, T(0));
  for (int64_t j = 0; j < n_events; ++j) {
    const int32_t st = st_of[ev[j].slot];
    if (st >= 0) arr[ev[j].k * n_st + st] += ev[j].weight;
  }

  int32_t* cnt = counts_out->typed_data();
  cnt[0] = static_cast<int32_t>(n_active);
  cnt[1] = static_cast<int32_t>(n_stepped);
  cnt[2] = static_cast<int32_t>(std::min<int64_t>(n_events, INT32_MAX));
  cnt[3] = static_cast<int32_t>(n_awake);
  return ffi::Error::Success();
}

ffi::Error DeliverDispatch(int64_t n, int64_t has_silent, int64_t has_removed,
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
  if (type == ffi::DataType::F32) {
    return Deliver<float>(n, has_silent, has_removed, cells_in, stamps_in, pending_flat,
                          pending_k, awake_flat, always_flat, indptr, indices, counts, w_pre,
                          silent, removed, refractory, lag, arrival, consts, window, cells_out,
                          stamps_out, st_flat, st_vg, st_since, arrivals, aw, cnt);
  }
  if (type == ffi::DataType::F64) {
    return Deliver<double>(n, has_silent, has_removed, cells_in, stamps_in, pending_flat,
                           pending_k, awake_flat, always_flat, indptr, indices, counts, w_pre,
                           silent, removed, refractory, lag, arrival, consts, window, cells_out,
                           stamps_out, st_flat, st_vg, st_since, arrivals, aw, cnt);
  }
  return ffi::Error::InvalidArgument("brainsim_window_deliver: float32 or float64 only");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimWindowDeliver, DeliverDispatch,
                              ffi::Ffi::Bind()
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

// brainsim: a whole chunk of the windowed stepper for the LIF model, in C++ on the CPU.
//
// The per-window form is `windowed_chunk(native=True)` (brainsim/sim/_windowed.py): each
// window's delivery (the active set, the exact jumps, the list of neurons to step) in C++
// (window_deliver.h), then the listed neurons stepped in JAX, their rows written back, the
// awake and spike lists compacted by XLA. Here one call runs every window of the chunk:
// the same delivery, then per window
//   4. the stepped entries in blocks of kLanes through the window's steps (lif.h:
//      brainsim.models.LIF.step in the operation order of XLA's compiled form), the inputs'
//      Poisson events drawn from stream 2 (the keys and thresholds of the JAX form),
//      replayed events and currents added to them;
//   5. their rows written back (u, g, since, valid from the next window); the entries left
//      awake (still refractory, or able to reach threshold: max(u, 0) + max(g, 0) x peak >
//      v_th - tol, with XLA's fused multiply-add) listed after those the jumps left awake;
//   6. the window's spikes listed by step, then stepped slot: the next window's input.
// The lists keep the per-window form's order (stepped slots, awake entries, spikes), and so
// every sum's order: the results equal it bit for bit (tests/test_windowed_native.py). XLA
// ran steps 4-6 as some 40 small passes per window, each with its fixed cost.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.h"
#include "lif.h"
#include "window_deliver.h"

namespace ffi = xla::ffi;

namespace {

using namespace brainsim_native;

constexpr int64_t kParallelSlots = 4096;  // stepped slots from which a window is split

// A window's stepped entries, merged over the workers (slots as in brainsim_window_deliver).
template <typename T>
struct Stepped {
  std::vector<int32_t> entry, since, awake;  // awake: those the jumps left awake
  std::vector<T> u, g, arrivals;             // arrivals [d, slots]
  std::vector<T> replayed, current;          // [d, always-active slots], zero between uses
  std::vector<uint32_t> masks;               // Poisson bits [words, slots] of a block
  // the window's spikes, found block by block by each worker, then merged by step and slot
  std::vector<std::vector<int32_t>> part_k, part_slot;
  std::vector<int64_t> part_nonfinite;  // stepped rows left NaN or infinite
  std::vector<int32_t> fired_k, fired_slot;
};

// What stays fixed over the chunk.
template <typename T>
struct Setup {
  int64_t n, n_trials, d, k_trial, words, n_rec, n_cur;
  T k_m, k_s, c, thr, peak;
  const int32_t* rfc;
  const T *v_th, *v_reset, *kick;  // [n] each
  Stream stream;
  const int32_t* input_slot;  // [inputs]: the input's position among a trial's always-active
  const int32_t* input_idx;
  const int32_t *rep_off, *rep_ev;
  const int32_t *cur_pos, *cur_start, *cur_stop;
  const T* cur_amp;
  const int32_t* rec_slot;  // [recorded]: position among a trial's always-active entries
};

// Steps 4-6 for one window: every stepped slot through the window.
template <typename T>
void step_window(ffi::ThreadPool& thread_pool, const Setup<T>& su, int64_t wi, uint32_t w,
                 Stepped<T>& st, T* cells, T* tr_u, T* tr_g) {
  const int64_t d = su.d, n_st = static_cast<int64_t>(st.entry.size());
  const int64_t k_all = su.n_trials * su.k_trial;  // always-active slots: 0..k_all-1
  // the inputs' drive of this window on their slots: Poisson bits, replayed events, currents
  // (tables of k_pad columns: a block that starts among the always-active slots ends there)
  const int64_t k_pad = (k_all + kLanes - 1) / kLanes * kLanes;
  uint32_t* masks = at_least(st.masks, su.words * std::max<int64_t>(k_pad, 1));
  std::fill_n(masks, su.words * k_pad, 0u);
  for (int64_t b = 0; b < su.n_trials; ++b) {
    const uint32_t* key = su.stream.keys + b * su.stream.n_draws * 2;
    for (int64_t p = 0; p < su.stream.n_in; ++p) {
      if (!su.stream.drives(b, p)) continue;
      uint32_t x0 = uint32_t(su.input_idx[p]), x1 = w;
      threefry(key[0], key[1], x0, x1);
      const int64_t slot = b * su.k_trial + su.input_slot[p];
      // (bits of a slot at word stride k_pad)
      draw_events(su.stream, b, p, uint32_t(su.input_idx[p]), w, x0, x1, masks + slot, k_pad);
    }
  }
  T* rep = nullptr;
  const int64_t r0 = su.rep_off[wi * su.n_trials], r1 = su.rep_off[(wi + 1) * su.n_trials];
  if (r1 > r0) {
    rep = at_least(st.replayed, d * k_pad);  // (zero between uses: the steps clear it)
    for (int64_t b = 0; b < su.n_trials; ++b) {
      const int64_t lo = su.rep_off[wi * su.n_trials + b], hi = su.rep_off[wi * su.n_trials + b + 1];
      for (int64_t r = lo; r < hi; ++r) {
        const int64_t slot = b * su.k_trial + su.input_slot[su.rep_ev[2 * r + 1]];
        rep[su.rep_ev[2 * r] * k_pad + slot] += T(1);
      }
    }
  }
  T* cur = nullptr;
  const int64_t t0 = int64_t(w) * d;
  for (int64_t ci = 0; ci < su.n_cur; ++ci) {
    if (su.cur_start[ci] >= t0 + d || su.cur_stop[ci] <= t0) continue;
    if (cur == nullptr) {
      cur = at_least(st.current, d * k_pad);
      std::fill_n(cur, d * k_pad, T(0));
    }
    for (int64_t b = 0; b < su.n_trials; ++b) {
      const int64_t slot = b * su.k_trial + su.input_slot[su.cur_pos[ci]];
      const T amp = su.cur_amp[b * su.n_cur + ci];
      for (int64_t k = 0; k < d; ++k) {
        const int64_t t = t0 + k;
        if (t >= su.cur_start[ci] && t < su.cur_stop[ci]) cur[k * k_pad + slot] += amp;
      }
    }
  }
  T* arr = st.arrivals.data();
  // the blocks of slots in contiguous ranges over the workers (each writes its own slots'
  // rows and traces, and lists its spikes)
  const int64_t n_blocks = (n_st + kLanes - 1) / kLanes;
  const int workers = worker_count(thread_pool.num_threads(), n_blocks, n_st, kParallelSlots);
  st.part_k.resize(workers);
  st.part_slot.resize(workers);
  st.part_nonfinite.resize(workers);
  run_parts(thread_pool, workers, [&](int t) {
  std::vector<int32_t>& fired_k = st.part_k[t];
  std::vector<int32_t>& fired_slot = st.part_slot[t];
  int64_t& nonfinite = st.part_nonfinite[t];
  nonfinite = 0;
  fired_k.clear();
  fired_slot.clear();
  const int64_t b_end = n_blocks * (t + 1) / workers;
  for (int64_t s0 = n_blocks * t / workers * kLanes; s0 < b_end * kLanes; s0 += kLanes) {
    const int lanes = int(std::min<int64_t>(kLanes, n_st - s0));
    const bool inputs = s0 < k_all;  // a block of always-active slots gets the drive
    auto run = [&](auto lanes_c, auto ev, auto rp, auto cu) {
      constexpr int L = decltype(lanes_c)::value;
      for (int64_t s1 = s0; s1 < s0 + lanes; s1 += L) {
        Lanes<T, L> x;
        for (int l = 0; l < L; ++l) {
          const int64_t i = st.entry[s1 + l] % su.n;
          x.v[l] = st.u[s1 + l];
          x.g[l] = st.g[s1 + l];
          x.since[l] = st.since[s1 + l];
          x.rfc[l] = su.rfc[i];
          x.v_th[l] = su.v_th[i];
          x.v_reset[l] = su.v_reset[i];
          x.kick[l] = su.kick[i];
        }
        // the Poisson bits of these slots, at word stride kLanes as lif_step reads them
        uint32_t bits[64 * kLanes];
        if (decltype(ev)::value) {
          for (int64_t wd = 0; wd < su.words; ++wd) {
            for (int l = 0; l < L; ++l) bits[wd * kLanes + l] = masks[wd * k_pad + s1 + l];
          }
        }
        for (int64_t k = 0; k < d; ++k) {
          int32_t fired[L];
          const bool any = lif_step<T, L, decltype(ev)::value, decltype(rp)::value,
                                    decltype(cu)::value>(
              x, su.k_m, su.k_s, su.c, k, arr + k * n_st + s1,
              decltype(rp)::value ? rep + k * k_pad + s1 : nullptr,
              decltype(cu)::value ? cur + k * k_pad + s1 : nullptr, bits, fired);
          if (any) {
            for (int l = 0; l < L; ++l) {
              if (fired[l]) {
                fired_k.push_back(int32_t(k));
                fired_slot.push_back(int32_t(s1 + l));
              }
            }
          }
          if (inputs && su.n_rec) {  // the recorded neurons are always-active
            for (int l = 0; l < L; ++l) {
              const int64_t slot = s1 + l;
              if (slot >= k_all) continue;
              const int64_t b = slot / su.k_trial, j = slot % su.k_trial;
              for (int64_t r = 0; r < su.n_rec; ++r) {
                if (su.rec_slot[r] != j) continue;
                const int64_t at = ((wi * d + k) * su.n_trials + b) * su.n_rec + r;
                tr_u[at] = x.v[l];
                tr_g[at] = x.g[l];
              }
            }
          }
        }
        const T valid = int_to_bits<T>(int64_t(w) + 1);
        for (int l = 0; l < L; ++l) {
          nonfinite += !(std::isfinite(x.v[l]) && std::isfinite(x.g[l]));
          const int64_t slot = s1 + l, e = st.entry[slot];
          st.u[slot] = x.v[l];
          st.g[slot] = x.g[l];
          st.since[slot] = x.since[l];
          T* row = cells + 4 * e;
          row[0] = x.v[l];
          row[1] = x.g[l];
          row[2] = int_to_bits<T>(x.since[l]);
          row[3] = valid;
        }
      }
    };
    using Y = std::true_type;
    using N = std::false_type;
    using F = std::integral_constant<int, kLanes>;
    using One = std::integral_constant<int, 1>;
    if (!inputs) {  // no drive: whole blocks vectorize
      if (lanes == kLanes) run(F{}, N{}, N{}, N{});
      else run(One{}, N{}, N{}, N{});
    } else if (rep && cur) {  // the always-active slots lane by lane, with their drive
      run(One{}, Y{}, Y{}, Y{});
    } else if (rep) {
      run(One{}, Y{}, Y{}, N{});
    } else if (cur) {
      run(One{}, Y{}, N{}, Y{});
    } else {
      run(One{}, Y{}, N{}, N{});
    }
  }
  });
  // (6.) the spikes by step, then slot (the workers found them slot by slot, in slot ranges)
  st.fired_k.clear();
  st.fired_slot.clear();
  for (int k = 0; k < d; ++k) {
    for (int t = 0; t < workers; ++t) {
      for (size_t j = 0; j < st.part_k[t].size(); ++j) {
        if (st.part_k[t][j] != k) continue;
        st.fired_k.push_back(k);
        st.fired_slot.push_back(st.part_slot[t][j]);
      }
    }
  }
}

template <typename T>
ffi::Error WindowedLif(
    ffi::ThreadPool thread_pool, int64_t n, int64_t has_silent, int64_t has_removed,
    ffi::AnyBuffer cells_in, ffi::Buffer<ffi::S32> pending_flat,
    ffi::Buffer<ffi::S32> pending_k, ffi::Buffer<ffi::S32> awake_flat,
    ffi::Buffer<ffi::S32> always_flat, ffi::AnyBuffer indptr_buf, ffi::Buffer<ffi::S32> indices,
    ffi::AnyBuffer counts_buf, ffi::AnyBuffer w_pre_buf, ffi::Buffer<ffi::PRED> silent,
    ffi::Buffer<ffi::PRED> removed, ffi::Buffer<ffi::S32> refractory, ffi::AnyBuffer lag_buf,
    ffi::AnyBuffer arrival_buf, ffi::AnyBuffer consts_buf, ffi::AnyBuffer props,
    ffi::AnyBuffer neuron_consts, ffi::Buffer<ffi::S32> window, ffi::Buffer<ffi::S32> input_idx,
    ffi::Buffer<ffi::S32> input_slot, ffi::Buffer<ffi::S32> rec_slot, ffi::Buffer<ffi::U32> keys,
    ffi::Buffer<ffi::S32> levels, ffi::Buffer<ffi::U32> table,
    ffi::Buffer<ffi::S32> replay_offsets, ffi::Buffer<ffi::S32> replay_events,
    ffi::Buffer<ffi::S32> cur_pos, ffi::AnyBuffer cur_amp, ffi::Buffer<ffi::S32> cur_start,
    ffi::Buffer<ffi::S32> cur_stop, ffi::Result<ffi::AnyBuffer> cells_out,
    ffi::Result<ffi::Buffer<ffi::S32>> pend_flat_out,
    ffi::Result<ffi::Buffer<ffi::S32>> pend_k_out, ffi::Result<ffi::Buffer<ffi::S32>> awake_out,
    ffi::Result<ffi::Buffer<ffi::S32>> spike_flat, ffi::Result<ffi::Buffer<ffi::S32>> spike_k,
    ffi::Result<ffi::Buffer<ffi::S32>> counts_out, ffi::Result<ffi::AnyBuffer> tr_u_out,
    ffi::Result<ffi::AnyBuffer> tr_g_out) {
  // the delivery's inputs, as brainsim_window_deliver reads them
  Inputs<T> in;
  in.cells = reinterpret_cast<T*>(cells_out->untyped_data());
  if (cells_in.untyped_data() != cells_out->untyped_data()) {
    std::memcpy(in.cells, cells_in.untyped_data(), cells_in.size_bytes());
  }
  const auto tr_dims = tr_u_out->dimensions();  // [windows, d, trials, recorded]
  const int64_t n_windows = tr_dims[0], budget = spike_flat->dimensions()[1];
  in.n = n;
  in.n_trials = tr_dims[2];
  in.none = in.n_trials * n;
  // the active set's stamp table, (window + 1, slot) per entry: zero at the start of a call
  // (a stamp from an earlier call could name a window of this one)
  thread_local std::vector<int32_t> stamps;
  stamps.assign(2 * in.none, 0);
  in.stamps = stamps.data();
  const int64_t k_always = always_flat.dimensions()[0];
  if (cells_in.element_count() < 4 * in.none || k_always % in.n_trials != 0 ||
      replay_offsets.element_count() != n_windows * in.n_trials + 1) {
    return ffi::Error::InvalidArgument("brainsim_windowed_lif: inconsistent sizes");
  }
  in.per_trial_always = k_always / in.n_trials;
  read_network(in, always_flat, indptr_buf, indices, counts_buf, w_pre_buf, silent, removed,
               refractory, lag_buf, arrival_buf, consts_buf, has_silent, has_removed);

  // the stepping's constants
  Setup<T> su;
  su.n = n;
  su.n_trials = in.n_trials;
  su.d = in.d;
  su.k_trial = in.per_trial_always;
  su.words = (su.d + 31) / 32;
  su.n_rec = rec_slot.dimensions()[0];
  su.n_cur = cur_pos.dimensions()[0];
  const T* pr = reinterpret_cast<const T*>(props.untyped_data());
  su.k_m = pr[0];
  su.k_s = pr[1];
  su.c = pr[2];
  su.thr = in.thr;
  su.peak = in.peak;
  su.rfc = in.rfc;
  const T* nc = reinterpret_cast<const T*>(neuron_consts.untyped_data());  // [3, n]
  su.v_th = nc;
  su.v_reset = nc + n;
  su.kick = nc + 2 * n;
  const int64_t n_in = input_idx.dimensions()[0];
  su.stream = {keys.typed_data(), levels.typed_data(), table.typed_data(),
               keys.dimensions()[1], n_in, su.d};
  su.input_slot = input_slot.typed_data();
  su.input_idx = input_idx.typed_data();
  su.rep_off = replay_offsets.typed_data();
  su.rep_ev = replay_events.typed_data();
  su.cur_pos = cur_pos.typed_data();
  su.cur_start = cur_start.typed_data();
  su.cur_stop = cur_stop.typed_data();
  su.cur_amp = reinterpret_cast<const T*>(cur_amp.untyped_data());
  su.rec_slot = rec_slot.typed_data();
  if (su.words > 64) return ffi::Error::InvalidArgument("brainsim_windowed_lif: delay too long");

  // the lists carried from window to window
  std::vector<int32_t> pf, pk, awake;
  const int64_t none = in.none;
  for (int64_t j = 0; j < pending_flat.dimensions()[0]; ++j) {
    if (pending_flat.typed_data()[j] < none) {
      pf.push_back(pending_flat.typed_data()[j]);
      pk.push_back(pending_k.typed_data()[j]);
    }
  }
  for (int64_t j = 0; j < awake_flat.dimensions()[0]; ++j) {
    if (awake_flat.typed_data()[j] < none) awake.push_back(awake_flat.typed_data()[j]);
  }

  T* tr_u = reinterpret_cast<T*>(tr_u_out->untyped_data());
  T* tr_g = reinterpret_cast<T*>(tr_g_out->untyped_data());
  std::fill_n(tr_u, tr_u_out->element_count(), T(0));
  std::fill_n(tr_g, tr_g_out->element_count(), T(0));
  int32_t* out_flat = spike_flat->typed_data();
  int32_t* out_k = spike_k->typed_data();
  int32_t* cnt = counts_out->typed_data();
  std::fill_n(out_flat, n_windows * budget, int32_t(none));
  std::fill_n(out_k, n_windows * budget, 0);
  thread_local Stepped<T> scratch;
  Stepped<T>& st = scratch;
  std::vector<int32_t> next_awake;
  std::vector<std::pair<int32_t, int32_t>> listed;
  for (int64_t wi = 0; wi < n_windows; ++wi) {
    in.w = window.typed_data()[0] + int32_t(wi);
    in.pf = pf.data();
    in.pk = pk.data();
    in.n_pending = static_cast<int64_t>(pf.size());
    in.awake = awake.data();
    in.n_awake_in = static_cast<int64_t>(awake.size());
    // 1-3. the delivery, the trials split over the workers
    const int workers = worker_count(thread_pool.num_threads(), in.n_trials,
                                     in.n_pending + in.n_awake_in + k_always, kParallelWork);
    std::vector<Part<T>>& pool = parts<T>(workers);
    run_parts(thread_pool, workers, [&](int t) {
      deliver_part(in, in.n_trials * t / workers, in.n_trials * (t + 1) / workers, pool[t]);
    });
    int64_t n_st = 0;
    for (int t = 0; t < workers; ++t) n_st += static_cast<int64_t>(pool[t].st_entry.size());
    st.entry.resize(n_st);
    st.u.resize(n_st);
    st.g.resize(n_st);
    st.since.resize(n_st);
    st.arrivals.assign(su.d * n_st, T(0));
    st.awake.clear();
    const MergeCounts merged = merge_parts(
        in, pool, workers, n_st,
        [&](int64_t slot, int32_t entry, T u, T g, int32_t since) {
          st.entry[slot] = entry;
          st.u[slot] = u;
          st.g[slot] = g;
          st.since[slot] = since;
        },
        [&](int32_t k, int32_t slot, T weight) { st.arrivals[k * n_st + slot] += weight; },
        [&](int32_t e) { st.awake.push_back(e); });
    // 4-6.
    step_window(thread_pool, su, wi, uint32_t(in.w), st, in.cells, tr_u, tr_g);
    next_awake.assign(st.awake.begin(), st.awake.end());
    for (int64_t slot = 0; slot < n_st; ++slot) {
      const int64_t i = st.entry[slot] % n;
      // (max(u, 0) + max(g, 0) peak, the product fused into the sum as XLA does)
      const T could = mul_add(std::max(st.g[slot], T(0)), su.peak, std::max(st.u[slot], T(0)));
      if (st.since[slot] < su.rfc[i] || could > su.thr) next_awake.push_back(st.entry[slot]);
    }
    awake.swap(next_awake);
    const int64_t n_spikes = static_cast<int64_t>(st.fired_k.size());
    pf.resize(n_spikes);
    pk.resize(n_spikes);
    listed.resize(n_spikes);
    for (int64_t j = 0; j < n_spikes; ++j) {
      pf[j] = st.entry[st.fired_slot[j]];
      pk[j] = st.fired_k[j];
      listed[j] = {pk[j], pf[j]};
    }
    // the output lists them by step, trial, neuron (the order of simulate's results); the
    // next window reads them in the order above, the per-window form's
    std::sort(listed.begin(), listed.end());
    for (int64_t j = 0; j < std::min(n_spikes, budget); ++j) {
      out_k[wi * budget + j] = listed[j].first;
      out_flat[wi * budget + j] = listed[j].second;
    }
    int64_t nonfinite = merged.nonfinite;
    for (int64_t x : st.part_nonfinite) nonfinite += x;
    int32_t* c = cnt + 6 * wi;
    c[0] = int32_t(merged.active);
    c[1] = int32_t(merged.stepped);
    c[2] = int32_t(n_spikes);
    c[3] = int32_t(std::min<int64_t>(merged.events, INT32_MAX));
    c[4] = int32_t(awake.size());
    c[5] = int32_t(std::min<int64_t>(nonfinite, INT32_MAX));
  }
  // the state's lists: the last window's spikes and the entries it left awake
  const int64_t n_pend = pend_flat_out->dimensions()[0], n_aw = awake_out->dimensions()[0];
  int32_t* pfo = pend_flat_out->typed_data();
  int32_t* pko = pend_k_out->typed_data();
  int32_t* awo = awake_out->typed_data();
  for (int64_t j = 0; j < n_pend; ++j) {
    const bool live = j < static_cast<int64_t>(pf.size());
    pfo[j] = live ? pf[j] : int32_t(none);
    pko[j] = live ? pk[j] : 0;
  }
  for (int64_t j = 0; j < n_aw; ++j) {
    awo[j] = j < static_cast<int64_t>(awake.size()) ? awake[j] : int32_t(none);
  }
  return ffi::Error::Success();
}

template <typename... Args>
ffi::Error WindowedLifDispatch(ffi::ThreadPool thread_pool, int64_t n, int64_t has_silent,
                               int64_t has_removed, ffi::AnyBuffer cells_in, Args... args) {
  return by_float_type(cells_in.element_type(), "brainsim_windowed_lif", [&](auto zero) {
    return WindowedLif<decltype(zero)>(thread_pool, n, has_silent, has_removed, cells_in,
                                       args...);
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    BrainsimWindowedLif,
    (WindowedLifDispatch<
        ffi::Buffer<ffi::S32>, ffi::Buffer<ffi::S32>,
        ffi::Buffer<ffi::S32>, ffi::Buffer<ffi::S32>, ffi::AnyBuffer, ffi::Buffer<ffi::S32>,
        ffi::AnyBuffer, ffi::AnyBuffer, ffi::Buffer<ffi::PRED>, ffi::Buffer<ffi::PRED>,
        ffi::Buffer<ffi::S32>, ffi::AnyBuffer, ffi::AnyBuffer, ffi::AnyBuffer, ffi::AnyBuffer,
        ffi::AnyBuffer, ffi::Buffer<ffi::S32>, ffi::Buffer<ffi::S32>, ffi::Buffer<ffi::S32>,
        ffi::Buffer<ffi::S32>, ffi::Buffer<ffi::U32>, ffi::Buffer<ffi::S32>,
        ffi::Buffer<ffi::U32>, ffi::Buffer<ffi::S32>, ffi::Buffer<ffi::S32>,
        ffi::Buffer<ffi::S32>, ffi::AnyBuffer, ffi::Buffer<ffi::S32>, ffi::Buffer<ffi::S32>,
        ffi::Result<ffi::AnyBuffer>, ffi::Result<ffi::Buffer<ffi::S32>>,
        ffi::Result<ffi::Buffer<ffi::S32>>, ffi::Result<ffi::Buffer<ffi::S32>>,
        ffi::Result<ffi::Buffer<ffi::S32>>, ffi::Result<ffi::Buffer<ffi::S32>>,
        ffi::Result<ffi::Buffer<ffi::S32>>, ffi::Result<ffi::AnyBuffer>,
        ffi::Result<ffi::AnyBuffer>>),
    ffi::Ffi::Bind()
        .Ctx<ffi::ThreadPool>()
        .Attr<int64_t>("n_neurons")
        .Attr<int64_t>("has_silent")
        .Attr<int64_t>("has_removed")
        .Arg<ffi::AnyBuffer>()          // cells
        .Arg<ffi::Buffer<ffi::S32>>()   // pending_flat
        .Arg<ffi::Buffer<ffi::S32>>()   // pending_k
        .Arg<ffi::Buffer<ffi::S32>>()   // awake_flat
        .Arg<ffi::Buffer<ffi::S32>>()   // always_flat
        .Arg<ffi::AnyBuffer>()          // indptr
        .Arg<ffi::Buffer<ffi::S32>>()   // indices
        .Arg<ffi::AnyBuffer>()          // counts
        .Arg<ffi::AnyBuffer>()          // w_syn per presynaptic
        .Arg<ffi::Buffer<ffi::PRED>>()  // silent (outputs cut)
        .Arg<ffi::Buffer<ffi::PRED>>()  // removed
        .Arg<ffi::Buffer<ffi::S32>>()   // refractory steps
        .Arg<ffi::AnyBuffer>()          // lag table
        .Arg<ffi::AnyBuffer>()          // arrival table
        .Arg<ffi::AnyBuffer>()          // delivery consts
        .Arg<ffi::AnyBuffer>()          // k_m, k_s, c
        .Arg<ffi::AnyBuffer>()          // v_th, v_reset, kick [3, n]
        .Arg<ffi::Buffer<ffi::S32>>()   // first window
        .Arg<ffi::Buffer<ffi::S32>>()   // input neurons
        .Arg<ffi::Buffer<ffi::S32>>()   // inputs' positions among the always-active
        .Arg<ffi::Buffer<ffi::S32>>()   // recorded neurons' positions among them
        .Arg<ffi::Buffer<ffi::U32>>()   // stream keys
        .Arg<ffi::Buffer<ffi::S32>>()   // threshold levels
        .Arg<ffi::Buffer<ffi::U32>>()   // threshold table
        .Arg<ffi::Buffer<ffi::S32>>()   // replay: offsets
        .Arg<ffi::Buffer<ffi::S32>>()   // replay: (k, input)
        .Arg<ffi::Buffer<ffi::S32>>()   // current: input position
        .Arg<ffi::AnyBuffer>()          // current: amplitude
        .Arg<ffi::Buffer<ffi::S32>>()   // current: start step
        .Arg<ffi::Buffer<ffi::S32>>()   // current: stop step
        .Ret<ffi::AnyBuffer>()          // cells
        .Ret<ffi::Buffer<ffi::S32>>()   // pending_flat
        .Ret<ffi::Buffer<ffi::S32>>()   // pending_k
        .Ret<ffi::Buffer<ffi::S32>>()   // awake_flat
        .Ret<ffi::Buffer<ffi::S32>>()   // spikes: flat entry [windows, S]
        .Ret<ffi::Buffer<ffi::S32>>()   // spikes: step
        .Ret<ffi::Buffer<ffi::S32>>()   // [windows, 6] counts
        .Ret<ffi::AnyBuffer>()          // traces: u
        .Ret<ffi::AnyBuffer>());        // traces: g

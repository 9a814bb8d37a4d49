// brainsim: a whole chunk of the dense-window stepper for the LIF model, in C++ on the CPU.
//
// The plain-JAX form is brainsim/sim/_dense_window.py (`dense_window_chunk`): every neuron
// stepped every dt with brainsim.models.LIF.step, synapses delivered once per delay window
// from the previous window's spikes, Poisson input from stream 2 of
// brainsim/kernels/_poisson.py. XLA:CPU runs each window as some twenty whole-array passes
// (the Poisson draws, the gathers of the drive, one pass per equation of the step, the
// spike compaction); here one call runs every window of the chunk, and each neuron's state
// stays in registers over the 18 steps of a window.
//
// Per window, for each trial (trials, or the neurons of one trial, split over XLA's
// intra-op threads):
//   1. the previous window's spikes are expanded over their CSR rows into a table of
//      arrivals [delay, neurons] (in the order of brainsim_dense_deliver: spikes in list
//      order, each row in CSR order, so every target's sum is rounded as there);
//   2. blocks of kLanes neurons are stepped through the window's steps. An input neuron's
//      Poisson events for the window come from one Threefry-2x32 call (more only where the
//      window holds an event), drawn from the same keys and thresholds as the JAX form;
//   3. the window's spikes are listed by step, trial, neuron: the next window's input and
//      the chunk's output (cut at the spike budget, counted in full).
// Every formula keeps the operation order of LIF.step (u' = u + (g c - (u - i_ext) k_m),
// g' = g - g k_s, then threshold, arrivals and input events unless refractory, reset), so
// the results equal the JAX form's bit for bit (tests/test_dense_native.py).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common.h"
#include "lif.h"

namespace ffi = xla::ffi;

namespace {

using namespace brainsim_native;

constexpr int64_t kNeuronSplit = 4096;  // neurons per trial from which a trial is split

// The chunk's inputs, shared read-only by the workers (the state rows of a (trial, neuron
// range) are written by the worker that owns it).
template <typename T>
struct Chunk {
  int64_t n, n_trials, d, n_windows, budget, n_rec, n_in, n_draws, words;
  int32_t w0;
  T *u, *g;
  int32_t* since;
  // network
  const int32_t *ind, *ptr32;
  const int64_t* ptr64;
  bool wide_ptr;
  const T *counts, *w_pre;
  const bool *sil, *rem;
  bool has_silent, has_removed;
  // neurons
  const int32_t* rfc;
  const T *v_th, *v_reset, *ev_w;
  T k_m, k_s, c;
  // drive
  const int32_t* input_pos;  // [n]: position among the inputs, -1 for none
  const int32_t* in_idx;     // [inputs]: the input neurons
  Stream stream;
  // replayed events: those of (window wi, trial b) are rows [off[wi * trials + b],
  // off[wi * trials + b + 1]) of ev (step within the window, input position)
  const int32_t *rep_off, *rep_ev;
  const int32_t *cur_pos, *cur_start, *cur_stop;  // currents: input position, [start, stop)
  const T* cur_amp;                               // [trials, currents]
  int64_t n_cur;
  const int32_t* rec_slot;  // [n]: first trace slot of the neuron, -1 for none
  const int32_t* rec_next;  // [n_rec]: the next slot of the same neuron, -1 for none
  T *tr_u, *tr_g;           // [windows, d, trials, n_rec]

  int64_t row_start(int64_t i) const { return wide_ptr ? ptr64[i] : ptr32[i]; }
};

// One worker's share of a window: trials [b0, b1), neurons [i0, i1).
struct Span {
  int64_t b0, b1, i0, i1;
};

// A spike: step within the window and neuron.
struct Spike {
  int32_t k, neuron;
};

// A worker's scratch (kept between windows and calls, grown, never shrunk) and results.
template <typename T>
struct Part {
  std::vector<T> arrivals;  // [d, span], zero between uses (read and cleared by the steps)
  std::vector<T> current;   // [d, span], only in windows with a current on
  std::vector<T> replayed;  // [d, span], zero between uses (read and cleared by the steps)
  std::vector<std::vector<Spike>> spikes;  // per trial of the span, by step then neuron
  std::vector<uint32_t> masks;             // [words, kLanes] event bits of a block
  int64_t events = 0;
};

// Steps neurons [i, i + L) of trial b through window wi. ``arr``/``rep``/``cur`` point at
// the block's first neuron in the worker's [d, span] tables (row stride ``span``) of
// arrivals, replayed events and currents. Events: Poisson bits in ``mask`` (word stride
// kLanes) and replayed counts.
template <typename T, int L, bool kEvents, bool kReplay, bool kCurrent>
void step_block(const Chunk<T>& ch, int64_t wi, int64_t b, int64_t i, T* __restrict arr,
                T* __restrict rep, const T* __restrict cur, int64_t span,
                const uint32_t* __restrict mask, std::vector<Spike>& out) {
  const int64_t n = ch.n, d = ch.d, e0 = b * n + i;
  Lanes<T, L> x;
  for (int l = 0; l < L; ++l) {
    x.v[l] = ch.u[e0 + l];
    x.g[l] = ch.g[e0 + l];
    x.since[l] = ch.since[e0 + l];
    x.rfc[l] = ch.rfc[i + l];
    x.v_th[l] = ch.v_th[i + l];
    x.v_reset[l] = ch.v_reset[i + l];
    x.kick[l] = ch.ev_w[i + l];
  }
  bool recorded = false;
  for (int l = 0; l < L; ++l) recorded |= ch.rec_slot[i + l] >= 0;
  for (int64_t k = 0; k < d; ++k) {
    int32_t fired[L];
    const bool any = lif_step<T, L, kEvents, kReplay, kCurrent>(
        x, ch.k_m, ch.k_s, ch.c, k, arr + k * span, kReplay ? rep + k * span : nullptr,
        kCurrent ? cur + k * span : nullptr, mask, fired);
    if (any) {
      for (int l = 0; l < L; ++l) {
        if (fired[l]) out.push_back({int32_t(k), int32_t(i + l)});
      }
    }
    if (recorded) {
      const int64_t row = ((wi * d + k) * ch.n_trials + b) * ch.n_rec;
      for (int l = 0; l < L; ++l) {
        for (int32_t r = ch.rec_slot[i + l]; r >= 0; r = ch.rec_next[r]) {
          ch.tr_u[row + r] = x.v[l];
          ch.tr_g[row + r] = x.g[l];
        }
      }
    }
  }
  for (int l = 0; l < L; ++l) {
    ch.u[e0 + l] = x.v[l];
    ch.g[e0 + l] = x.g[l];
    ch.since[e0 + l] = x.since[l];
  }
}

// step_block for the block's drive: Poisson events, replayed events, currents.
template <typename T, int L>
void step_block_any(const Chunk<T>& ch, int64_t wi, int64_t b, int64_t i, T* arr, T* rep,
                    const T* cur, int64_t span, const uint32_t* mask, bool events,
                    std::vector<Spike>& out) {
  auto run = [&](auto ev, auto rp, auto cu) {
    step_block<T, L, decltype(ev)::value, decltype(rp)::value, decltype(cu)::value>(
        ch, wi, b, i, arr, rep, cur, span, mask, out);
  };
  using Y = std::true_type;
  using N = std::false_type;
  if (rep) {
    if (cur) return run(Y{}, Y{}, Y{});
    return run(Y{}, Y{}, N{});
  }
  if (events) {
    if (cur) return run(Y{}, N{}, Y{});
    return run(Y{}, N{}, N{});
  }
  if (cur) return run(N{}, N{}, Y{});
  return run(N{}, N{}, N{});
}

// One window of one worker: deliver, then step its neurons of each of its trials.
template <typename T>
void window_part(const Chunk<T>& ch, int64_t wi, const Span& sp,
                 const std::vector<std::vector<Spike>>& pending, Part<T>& p) {
  const int64_t n = ch.n, d = ch.d, span = sp.i1 - sp.i0;
  const uint32_t w = uint32_t(ch.w0 + wi);
  T* arr = at_least(p.arrivals, d * span);
  uint32_t* mask = at_least(p.masks, ch.words * kLanes);
  p.spikes.resize(sp.b1 - sp.b0);
  p.events = 0;
  const bool whole = sp.i0 == 0 && sp.i1 == n;
  for (int64_t b = sp.b0; b < sp.b1; ++b) {
    // 1. the previous window's spikes of this trial -> arrivals of its neurons in the span
    for (const Spike& s : pending[b]) {
      const int64_t q = b * n + s.neuron;
      if (ch.has_silent && ch.sil[q]) continue;
      const int64_t lo = ch.row_start(s.neuron), hi = ch.row_start(s.neuron + 1);
      if (sp.i0 == 0) p.events += hi - lo;
      const T wp = ch.w_pre[s.neuron];
      T* row = arr + s.k * span - sp.i0;
      if (whole && !ch.has_removed) {  // the common case, without tests per synapse
        for (int64_t c = lo; c < hi; ++c) row[ch.ind[c]] += ch.counts[c] * wp;
        continue;
      }
      const bool* rem = ch.rem + b * n;
      for (int64_t c = lo; c < hi; ++c) {
        const int64_t j = ch.ind[c];
        if (!whole && (j < sp.i0 || j >= sp.i1)) continue;
        const T wt = ch.counts[c] * wp;
        if (!(ch.has_removed && rem[j])) row[j] += wt;
      }
    }
    // the currents on in this window, summed per step as Drive.current_at does
    const T* cur = nullptr;
    const int64_t t0 = int64_t(w) * d;
    for (int64_t ci = 0; ci < ch.n_cur; ++ci) {
      if (ch.cur_start[ci] >= t0 + d || ch.cur_stop[ci] <= t0) continue;
      if (cur == nullptr) std::fill_n(at_least(p.current, d * span), d * span, T(0));
      T* cu = p.current.data();
      cur = cu;
      const int64_t i = ch.cur_pos[ci];  // here: a neuron (translated by the caller)
      if (i < sp.i0 || i >= sp.i1) continue;
      const T amp = ch.cur_amp[b * ch.n_cur + ci];
      for (int64_t k = 0; k < d; ++k) {
        const int64_t t = t0 + k;
        if (t >= ch.cur_start[ci] && t < ch.cur_stop[ci]) cu[k * span + i - sp.i0] += amp;
      }
    }
    // the replayed events of this window and trial, counted per step and neuron
    T* rep = nullptr;
    const int64_t r0 = ch.rep_off[wi * ch.n_trials + b], r1 = ch.rep_off[wi * ch.n_trials + b + 1];
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = ch.in_idx[ch.rep_ev[2 * r + 1]];
      if (i < sp.i0 || i >= sp.i1) continue;
      // (zero between uses: the steps read and clear it)
      if (rep == nullptr) rep = at_least(p.replayed, d * span);
      rep[ch.rep_ev[2 * r] * span + i - sp.i0] += T(1);
    }
    // 2. the neurons, kLanes at a time
    std::vector<Spike>& out = p.spikes[b - sp.b0];
    out.clear();
    const uint32_t* key = ch.stream.keys + b * ch.stream.n_draws * 2;
    for (int64_t i = sp.i0; i < sp.i1; i += kLanes) {
      const int lanes = int(std::min<int64_t>(kLanes, sp.i1 - i));
      bool draw = false;
      for (int l = 0; l < lanes; ++l) {
        const int32_t pos = ch.input_pos[i + l];
        draw |= pos >= 0 && ch.stream.drives(b, pos);
      }
      bool events = rep != nullptr;
      if (draw) {
        uint32_t x0[kLanes], x1[kLanes];
        for (int l = 0; l < kLanes; ++l) {
          x0[l] = uint32_t(i + l);
          x1[l] = w;
        }
        threefry_lanes(key[0], key[1], x0, x1);
        std::fill_n(mask, ch.words * kLanes, 0u);
        for (int l = 0; l < lanes; ++l) {
          const int32_t pos = ch.input_pos[i + l];
          if (pos >= 0) {
            events |=
                draw_events(ch.stream, b, pos, uint32_t(i + l), w, x0[l], x1[l], mask + l, kLanes);
          }
        }
      } else if (events) {
        std::fill_n(mask, ch.words * kLanes, 0u);
      }
      T* a = arr + (i - sp.i0);
      T* rp = rep == nullptr ? nullptr : rep + (i - sp.i0);
      const T* cu = cur == nullptr ? nullptr : cur + (i - sp.i0);
      if (lanes == kLanes) {
        step_block_any<T, kLanes>(ch, wi, b, i, a, rp, cu, span, mask, events, out);
      } else {
        // the last neurons one at a time (a lane's event bits: word stride kLanes, as above)
        for (int l = 0; l < lanes; ++l) {
          step_block_any<T, 1>(ch, wi, b, i + l, a + l, rp == nullptr ? nullptr : rp + l,
                               cu == nullptr ? nullptr : cu + l, span, mask + l, events, out);
        }
      }
    }
    // spikes were found block by block: order them by step, then neuron
    std::stable_sort(out.begin(), out.end(),
                     [](const Spike& x, const Spike& y) { return x.k < y.k; });
  }
}

template <typename T>
ffi::Error DenseLif(ffi::ThreadPool thread_pool, int64_t n, int64_t has_silent,
                    int64_t has_removed, ffi::AnyBuffer u_in,
                    ffi::AnyBuffer g_in, ffi::Buffer<ffi::S32> since_in,
                    ffi::Buffer<ffi::S32> pending_flat, ffi::Buffer<ffi::S32> pending_k,
                    ffi::AnyBuffer indptr, ffi::Buffer<ffi::S32> indices, ffi::AnyBuffer counts,
                    ffi::AnyBuffer w_pre, ffi::Buffer<ffi::PRED> silent,
                    ffi::Buffer<ffi::PRED> removed, ffi::Buffer<ffi::S32> refractory,
                    ffi::AnyBuffer neuron_consts, ffi::AnyBuffer props,
                    ffi::Buffer<ffi::S32> window, ffi::Buffer<ffi::S32> input_idx,
                    ffi::Buffer<ffi::U32> keys, ffi::Buffer<ffi::S32> levels,
                    ffi::Buffer<ffi::U32> table, ffi::Buffer<ffi::S32> replay_offsets,
                    ffi::Buffer<ffi::S32> replay_events, ffi::Buffer<ffi::S32> cur_pos, ffi::AnyBuffer cur_amp,
                    ffi::Buffer<ffi::S32> cur_start, ffi::Buffer<ffi::S32> cur_stop,
                    ffi::Buffer<ffi::S32> rec_idx, ffi::Result<ffi::AnyBuffer> u_out,
                    ffi::Result<ffi::AnyBuffer> g_out, ffi::Result<ffi::Buffer<ffi::S32>> since_out,
                    ffi::Result<ffi::Buffer<ffi::S32>> spike_flat,
                    ffi::Result<ffi::Buffer<ffi::S32>> spike_k,
                    ffi::Result<ffi::Buffer<ffi::S32>> counts_out,
                    ffi::Result<ffi::AnyBuffer> tr_u, ffi::Result<ffi::AnyBuffer> tr_g) {
  Chunk<T> ch;
  const auto tr_dims = tr_u->dimensions();  // [windows, d, trials, recorded]
  ch.n = n;
  ch.n_windows = tr_dims[0];
  ch.d = tr_dims[1];
  ch.n_trials = tr_dims[2];
  ch.n_rec = tr_dims[3];
  ch.budget = spike_flat->dimensions()[1];
  ch.n_in = input_idx.dimensions()[0];
  ch.n_draws = keys.dimensions()[1];
  ch.words = (ch.d + 31) / 32;
  const int64_t none = ch.n_trials * n;
  if (u_in.element_count() != none || table.dimensions()[1] != ch.d ||
      levels.dimensions()[1] != ch.n_in ||
      replay_offsets.element_count() != ch.n_windows * ch.n_trials + 1) {
    return ffi::Error::InvalidArgument("brainsim_dense_lif: inconsistent sizes");
  }
  ch.w0 = window.typed_data()[0];
  ch.u = reinterpret_cast<T*>(u_out->untyped_data());
  ch.g = reinterpret_cast<T*>(g_out->untyped_data());
  ch.since = since_out->typed_data();
  ch.ind = indices.typed_data();
  ch.wide_ptr = indptr.element_type() == ffi::DataType::S64;
  ch.ptr32 = reinterpret_cast<const int32_t*>(indptr.untyped_data());
  ch.ptr64 = reinterpret_cast<const int64_t*>(indptr.untyped_data());
  ch.counts = reinterpret_cast<const T*>(counts.untyped_data());
  ch.w_pre = reinterpret_cast<const T*>(w_pre.untyped_data());
  ch.sil = silent.typed_data();
  ch.rem = removed.typed_data();
  ch.has_silent = has_silent != 0;
  ch.has_removed = has_removed != 0;
  ch.rfc = refractory.typed_data();
  const T* nc = reinterpret_cast<const T*>(neuron_consts.untyped_data());  // [3, n]
  ch.v_th = nc;
  ch.v_reset = nc + n;
  ch.ev_w = nc + 2 * n;
  const T* pr = reinterpret_cast<const T*>(props.untyped_data());
  ch.k_m = pr[0];
  ch.k_s = pr[1];
  ch.c = pr[2];
  ch.stream = {keys.typed_data(), levels.typed_data(), table.typed_data(), ch.n_draws, ch.n_in,
               ch.d};
  ch.rep_off = replay_offsets.typed_data();
  ch.rep_ev = replay_events.typed_data();
  ch.n_cur = cur_pos.dimensions()[0];
  ch.cur_start = cur_start.typed_data();
  ch.cur_stop = cur_stop.typed_data();
  ch.cur_amp = reinterpret_cast<const T*>(cur_amp.untyped_data());
  ch.tr_u = reinterpret_cast<T*>(tr_u->untyped_data());
  ch.tr_g = reinterpret_cast<T*>(tr_g->untyped_data());

  // neuron -> input position, current -> neuron, neuron -> trace slots
  const int32_t* in_idx = input_idx.typed_data();
  ch.in_idx = in_idx;
  std::vector<int32_t> input_pos(n, -1), cur_neuron(ch.n_cur), rec_slot(n, -1),
      rec_next(std::max<int64_t>(ch.n_rec, 1), -1);
  for (int64_t p = 0; p < ch.n_in; ++p) input_pos[in_idx[p]] = int32_t(p);
  for (int64_t ci = 0; ci < ch.n_cur; ++ci) cur_neuron[ci] = in_idx[cur_pos.typed_data()[ci]];
  const int32_t* rec = rec_idx.typed_data();
  for (int64_t r = ch.n_rec - 1; r >= 0; --r) {
    rec_next[r] = rec_slot[rec[r]];
    rec_slot[rec[r]] = int32_t(r);
  }
  ch.input_pos = input_pos.data();
  ch.cur_pos = cur_neuron.data();
  ch.rec_slot = rec_slot.data();
  ch.rec_next = rec_next.data();

  // the previous window's spikes, per trial, in list order (by step, then neuron)
  std::vector<std::vector<Spike>> pending(ch.n_trials);
  const int32_t* pf = pending_flat.typed_data();
  const int32_t* pk = pending_k.typed_data();
  for (int64_t j = 0; j < pending_flat.dimensions()[0]; ++j) {
    if (pf[j] < none) pending[pf[j] / n].push_back({pk[j], int32_t(pf[j] % n)});
  }

  // the work split: trials in contiguous ranges; a trial's neurons too when there are
  // fewer trials than workers and enough neurons
  const int64_t split = n >= kNeuronSplit ? 8 : 1;
  const int workers = worker_count(thread_pool.num_threads(), ch.n_trials * split, none, 8192);
  std::vector<Span> spans;
  if (workers <= ch.n_trials) {
    for (int t = 0; t < workers; ++t) {
      spans.push_back({ch.n_trials * t / workers, ch.n_trials * (t + 1) / workers, 0, n});
    }
  } else {
    const int64_t per = (workers + ch.n_trials - 1) / ch.n_trials;
    for (int64_t b = 0; b < ch.n_trials; ++b) {
      for (int64_t r = 0; r < per; ++r) {
        // neuron ranges on whole blocks of kLanes
        const int64_t blocks = (n + kLanes - 1) / kLanes;
        const int64_t lo = std::min(n, blocks * r / per * kLanes);
        const int64_t hi = std::min(n, blocks * (r + 1) / per * kLanes);
        if (hi > lo) spans.push_back({b, b + 1, lo, hi});
      }
    }
  }
  // (scratch per calling thread: concurrent calls never share it; the workers reach it
  // through this reference, not through their own thread_local instances)
  thread_local std::vector<Part<T>> scratch;
  std::vector<Part<T>>& parts_pool = scratch;
  if (parts_pool.size() < spans.size()) parts_pool.resize(spans.size());
  for (size_t t = 0; t < spans.size(); ++t) {
    const int64_t span = spans[t].i1 - spans[t].i0;
    // arrivals and replayed events must start at zero (each window reads and clears what
    // it used)
    parts_pool[t].arrivals.assign(ch.d * span, T(0));
    if (ch.rep_off[ch.n_windows * ch.n_trials] > 0) parts_pool[t].replayed.assign(ch.d * span, T(0));
  }

  int32_t* out_flat = spike_flat->typed_data();
  int32_t* out_k = spike_k->typed_data();
  int32_t* out_counts = counts_out->typed_data();
  std::fill_n(out_flat, ch.n_windows * ch.budget, int32_t(none));
  std::fill_n(out_k, ch.n_windows * ch.budget, 0);
  std::fill_n(ch.tr_u, ch.n_windows * ch.d * ch.n_trials * ch.n_rec, T(0));
  std::fill_n(ch.tr_g, ch.n_windows * ch.d * ch.n_trials * ch.n_rec, T(0));
  const int n_parts = int(spans.size());
  for (int64_t wi = 0; wi < ch.n_windows; ++wi) {
    run_parts(thread_pool, n_parts, [&](int t) {
      window_part(ch, wi, spans[t], pending, parts_pool[t]);
    });
    // 3. this window's spikes by step, trial, neuron: the next window's input and the output
    int64_t events = 0;
    for (int t = 0; t < n_parts; ++t) events += parts_pool[t].events;
    for (auto& list : pending) list.clear();
    for (int t = 0; t < n_parts; ++t) {
      const Span& sp = spans[t];
      for (int64_t b = sp.b0; b < sp.b1; ++b) {
        const auto& s = parts_pool[t].spikes[b - sp.b0];
        pending[b].insert(pending[b].end(), s.begin(), s.end());
      }
    }
    if (n_parts > ch.n_trials) {  // a split trial's parts, each by step: merged by step
      for (auto& list : pending) {
        std::stable_sort(list.begin(), list.end(),
                         [](const Spike& x, const Spike& y) { return x.k < y.k; });
      }
    }
    int64_t listed = 0;
    int32_t* f_row = out_flat + wi * ch.budget;
    int32_t* k_row = out_k + wi * ch.budget;
    std::vector<size_t> at(ch.n_trials, 0);
    for (int64_t k = 0; k < ch.d; ++k) {
      for (int64_t b = 0; b < ch.n_trials; ++b) {
        const auto& list = pending[b];
        size_t& j = at[b];
        while (j < list.size() && list[j].k == k) {
          if (listed < ch.budget) {
            f_row[listed] = int32_t(b * n + list[j].neuron);
            k_row[listed] = int32_t(k);
          }
          ++listed;
          ++j;
        }
      }
    }
    out_counts[2 * wi] = int32_t(std::min<int64_t>(listed, INT32_MAX));
    out_counts[2 * wi + 1] = int32_t(std::min<int64_t>(events, INT32_MAX));
  }
  return ffi::Error::Success();
}

ffi::Error DenseLifDispatch(
    ffi::ThreadPool thread_pool, int64_t n, int64_t has_silent, int64_t has_removed,
    ffi::AnyBuffer u_in, ffi::AnyBuffer g_in, ffi::Buffer<ffi::S32> since_in,
    ffi::Buffer<ffi::S32> pending_flat, ffi::Buffer<ffi::S32> pending_k, ffi::AnyBuffer indptr,
    ffi::Buffer<ffi::S32> indices, ffi::AnyBuffer counts, ffi::AnyBuffer w_pre,
    ffi::Buffer<ffi::PRED> silent, ffi::Buffer<ffi::PRED> removed,
    ffi::Buffer<ffi::S32> refractory, ffi::AnyBuffer neuron_consts, ffi::AnyBuffer props,
    ffi::Buffer<ffi::S32> window, ffi::Buffer<ffi::S32> input_idx, ffi::Buffer<ffi::U32> keys,
    ffi::Buffer<ffi::S32> levels, ffi::Buffer<ffi::U32> table,
    ffi::Buffer<ffi::S32> replay_offsets, ffi::Buffer<ffi::S32> replay_events,
    ffi::Buffer<ffi::S32> cur_pos, ffi::AnyBuffer cur_amp, ffi::Buffer<ffi::S32> cur_start,
    ffi::Buffer<ffi::S32> cur_stop, ffi::Buffer<ffi::S32> rec_idx,
    ffi::Result<ffi::AnyBuffer> u_out, ffi::Result<ffi::AnyBuffer> g_out,
    ffi::Result<ffi::Buffer<ffi::S32>> since_out, ffi::Result<ffi::Buffer<ffi::S32>> spike_flat,
    ffi::Result<ffi::Buffer<ffi::S32>> spike_k, ffi::Result<ffi::Buffer<ffi::S32>> counts_out,
    ffi::Result<ffi::AnyBuffer> tr_u, ffi::Result<ffi::AnyBuffer> tr_g) {
  const auto type = u_in.element_type();
  for (auto other : {g_in.element_type(), counts.element_type(), w_pre.element_type(),
                     neuron_consts.element_type(), props.element_type(),
                     cur_amp.element_type(), tr_u->element_type(), tr_g->element_type()}) {
    if (other != type) return ffi::Error::InvalidArgument("brainsim_dense_lif: mixed float types");
  }
  return by_float_type(type, "brainsim_dense_lif", [&](auto zero) {
    return DenseLif<decltype(zero)>(
        thread_pool, n, has_silent, has_removed, u_in, g_in, since_in, pending_flat, pending_k,
        indptr, indices, counts, w_pre, silent, removed, refractory, neuron_consts, props, window,
        input_idx, keys, levels, table, replay_offsets, replay_events, cur_pos, cur_amp,
        cur_start, cur_stop, rec_idx, u_out, g_out, since_out, spike_flat, spike_k, counts_out,
        tr_u, tr_g);
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimDenseLif, DenseLifDispatch,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<int64_t>("n_neurons")
                                  .Attr<int64_t>("has_silent")
                                  .Attr<int64_t>("has_removed")
                                  .Arg<ffi::AnyBuffer>()             // u [trials, n]
                                  .Arg<ffi::AnyBuffer>()             // g
                                  .Arg<ffi::Buffer<ffi::S32>>()      // since
                                  .Arg<ffi::Buffer<ffi::S32>>()      // pending_flat
                                  .Arg<ffi::Buffer<ffi::S32>>()      // pending_k
                                  .Arg<ffi::AnyBuffer>()             // indptr
                                  .Arg<ffi::Buffer<ffi::S32>>()      // indices
                                  .Arg<ffi::AnyBuffer>()             // counts
                                  .Arg<ffi::AnyBuffer>()             // w_syn per presynaptic
                                  .Arg<ffi::Buffer<ffi::PRED>>()     // silent (outputs cut)
                                  .Arg<ffi::Buffer<ffi::PRED>>()     // removed
                                  .Arg<ffi::Buffer<ffi::S32>>()      // refractory steps
                                  .Arg<ffi::AnyBuffer>()             // v_th, v_reset, ev_w [3, n]
                                  .Arg<ffi::AnyBuffer>()             // k_m, k_s, c
                                  .Arg<ffi::Buffer<ffi::S32>>()      // first window
                                  .Arg<ffi::Buffer<ffi::S32>>()      // input neurons
                                  .Arg<ffi::Buffer<ffi::U32>>()      // stream keys
                                  .Arg<ffi::Buffer<ffi::S32>>()      // threshold levels
                                  .Arg<ffi::Buffer<ffi::U32>>()      // threshold table
                                  .Arg<ffi::Buffer<ffi::S32>>()      // replay: offsets
                                  .Arg<ffi::Buffer<ffi::S32>>()      // replay: (k, input)
                                  .Arg<ffi::Buffer<ffi::S32>>()      // current: input position
                                  .Arg<ffi::AnyBuffer>()             // current: amplitude
                                  .Arg<ffi::Buffer<ffi::S32>>()      // current: start step
                                  .Arg<ffi::Buffer<ffi::S32>>()      // current: stop step
                                  .Arg<ffi::Buffer<ffi::S32>>()      // recorded neurons
                                  .Ret<ffi::AnyBuffer>()             // u
                                  .Ret<ffi::AnyBuffer>()             // g
                                  .Ret<ffi::Buffer<ffi::S32>>()      // since
                                  .Ret<ffi::Buffer<ffi::S32>>()      // spikes: flat entry
                                  .Ret<ffi::Buffer<ffi::S32>>()      // spikes: step
                                  .Ret<ffi::Buffer<ffi::S32>>()      // [windows, 2] counts
                                  .Ret<ffi::AnyBuffer>()             // traces: u
                                  .Ret<ffi::AnyBuffer>());           // traces: g

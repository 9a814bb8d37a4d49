// brainsim: the LIF step and Poisson stream 2 in C++, shared by the native chunks of the
// dense-window and windowed steppers (dense_lif.cc, windowed_lif.cc).
//
// lif_step is brainsim.models.LIF.step for kLanes neurons at once, in the operation order
// of XLA's compiled form: u' = u + (g c - (u - i_ext) k_m), g' = g - g k_s unless
// refractory, then threshold, arrivals and input events unless refractory or just spiked,
// then reset. draw_events is stream 2 of brainsim/kernels/_poisson.py (window_block).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common.h"

namespace brainsim_native {

constexpr int kLanes = 16;  // neurons stepped together (vector lanes)

inline uint32_t rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

// XLA:CPU compiles for the host's instruction set and, where it has fused multiply-adds,
// contracts LIF.step's `g c - x` and `g - g k_s` into them (measured: every result of
// jax.jit(lambda: v + (g * c - (v - i) * k_m)) equals v + fma(g, c, -((v - i) * k_m))).
// The libraries are built for the host too (-march=native, -ffp-contract=off: no
// contraction of their own) and contract the same places, so both forms round alike.
template <typename T>
inline T mul_sub(T a, T b, T c) {  // a b - c
#ifdef __FMA__
  return std::fma(a, b, -c);
#else
  return a * b - c;
#endif
}
template <typename T>
inline T sub_mul(T c, T a, T b) {  // c - a b
#ifdef __FMA__
  return std::fma(-a, b, c);
#else
  return c - a * b;
#endif
}
template <typename T>
inline T mul_add(T a, T b, T c) {  // a b + c
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// Threefry-2x32, 20 rounds (brainsim.kernels.threefry2x32; JAX's PRNG block function).
inline void threefry(uint32_t k0, uint32_t k1, uint32_t& x0, uint32_t& x1) {
  static constexpr int kRot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
  const uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
  x0 += ks[0];
  x1 += ks[1];
  for (int i = 0; i < 5; ++i) {
    for (int r = 0; r < 4; ++r) {
      x0 += x1;
      x1 = rotl(x1, kRot[i % 2][r]);
      x1 ^= x0;
    }
    x0 += ks[(i + 1) % 3];
    x1 += ks[(i + 2) % 3] + uint32_t(i + 1);
  }
}

// threefry() for kLanes counters at once (the lanes in lockstep, so that the compiler can
// vectorize each round): (x0[l], x1[l]) under the key (k0, k1).
template <int R0, int R1, int R2, int R3>
inline void rounds(uint32_t* x0, uint32_t* x1) {
  for (int l = 0; l < kLanes; ++l) {
    uint32_t a = x0[l], b = x1[l];
    a += b; b = rotl(b, R0); b ^= a;
    a += b; b = rotl(b, R1); b ^= a;
    a += b; b = rotl(b, R2); b ^= a;
    a += b; b = rotl(b, R3); b ^= a;
    x0[l] = a;
    x1[l] = b;
  }
}

inline void threefry_lanes(uint32_t k0, uint32_t k1, uint32_t* x0, uint32_t* x1) {
  const uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
  auto inject = [&](int i) {
    for (int l = 0; l < kLanes; ++l) {
      x0[l] += ks[(i + 1) % 3];
      x1[l] += ks[(i + 2) % 3] + uint32_t(i + 1);
    }
  };
  for (int l = 0; l < kLanes; ++l) {
    x0[l] += ks[0];
    x1[l] += ks[1];
  }
  rounds<13, 15, 26, 6>(x0, x1);
  inject(0);
  rounds<17, 29, 16, 24>(x0, x1);
  inject(1);
  rounds<13, 15, 26, 6>(x0, x1);
  inject(2);
  rounds<17, 29, 16, 24>(x0, x1);
  inject(3);
  rounds<13, 15, 26, 6>(x0, x1);
  inject(4);
}

// Poisson stream 2's keys [trials, draws, 2] and thresholds (levels [trials, inputs] into
// table [L, d]), as brainsim.sim.Drive holds them.
struct Stream {
  const uint32_t* keys;
  const int32_t* levels;
  const uint32_t* table;
  int64_t n_draws, n_in, d;

  const uint32_t* row(int64_t b, int64_t pos) const {
    return table + int64_t(levels[b * n_in + pos]) * d;
  }
  // whether input ``pos`` of trial ``b`` can have events at all (its rate is not 0)
  bool drives(int64_t b, int64_t pos) const { return row(b, pos)[d - 1] > 0; }
};

// Stream 2's events of input ``pos`` (neuron ``neuron``) of trial ``b`` in window ``w``
// (brainsim/kernels/_poisson.py, window_block), from the first draw (a, bb) on: sets bits of
// ``mask`` (word stride ``stride``); true if any.
inline bool draw_events(const Stream& st, int64_t b, int64_t pos, uint32_t neuron, uint32_t w,
                        uint32_t a, uint32_t bb, uint32_t* mask, int64_t stride) {
  const int64_t d = st.d;
  const uint32_t* row = st.row(b, pos);
  if (a >= row[d - 1]) return false;  // no event in the window: the common case
  const uint32_t* key = st.keys + b * st.n_draws * 2;
  uint32_t pair[2] = {a, bb};
  int64_t at = 0, j = 0;
  int which = 0;
  bool any = false;
  while (true) {
    const uint32_t u = pair[which];
    int64_t gap = 0;
    for (int64_t k = 0; k < d; ++k) gap += u >= row[k];
    at = std::min(at + gap, d);
    if (at >= d) break;
    mask[(at >> 5) * stride] |= uint32_t(1) << (at & 31);
    any = true;
    if (++at >= d) break;
    if (++which == 2) {
      if (++j >= st.n_draws) break;
      pair[0] = neuron;
      pair[1] = w;
      threefry(key[2 * j], key[2 * j + 1], pair[0], pair[1]);
      which = 0;
    }
  }
  return any;
}

// L neurons' state and constants, in lanes.
template <typename T, int L>
struct Lanes {
  T v[L], g[L], v_th[L], v_reset[L], kick[L];
  int32_t since[L], rfc[L];
};

// One step (step k of a window) of L lanes. ``arrive``, ``replayed``: the lanes' synaptic
// arrivals and replayed input events of this step (read, then cleared: the tables are zero
// between uses); ``current``: their external drive; ``mask``: Poisson event bits (word
// stride kLanes). Sets ``fired[l]``; returns whether any lane fired.
template <typename T, int L, bool kEvents, bool kReplay, bool kCurrent>
inline int32_t lif_step(Lanes<T, L>& x, T k_m, T k_s, T c, int64_t k, T* __restrict arrive,
                        T* __restrict replayed, const T* __restrict current,
                        const uint32_t* __restrict mask, int32_t* __restrict fired) {
  int32_t any = 0;
  for (int l = 0; l < L; ++l) {
    T ev = T(0);
    if (kEvents) ev = T((mask[(k >> 5) * kLanes + l] >> (k & 31)) & 1u);
    if (kReplay) {
      ev += replayed[l];
      replayed[l] = T(0);
    }
    const T ie = kCurrent ? current[l] : T(0);
    const T in = arrive[l];
    arrive[l] = T(0);
    // (branch-free, flags as int32 like the data: so the compiler vectorizes the lanes;
    // every lane computes every value and selects keep the right one)
    const int32_t free = x.since[l] >= x.rfc[l];
    const T vn = x.v[l] + mul_sub(x.g[l], c, (x.v[l] - ie) * k_m);
    const T gn = sub_mul(x.g[l], x.g[l], k_s);
    const T vv = free ? vn : x.v[l];
    const T g2 = free ? gn : x.g[l];
    const int32_t spiked = free & int32_t(vv > x.v_th[l]);
    const int32_t open = free & (spiked ^ 1);
    const T g3 = open ? g2 + in : g2;
    const T v3 = open ? vv + ev * x.kick[l] : vv;
    const int32_t next = x.since[l] < int32_t(kSinceMax) ? x.since[l] + 1 : int32_t(kSinceMax);
    x.since[l] = spiked ? 1 : next;
    x.v[l] = spiked ? x.v_reset[l] : v3;
    x.g[l] = spiked ? T(0) : g3;
    fired[l] = spiked;
    any |= spiked;
  }
  return any;
}

}  // namespace brainsim_native

// brainsim: the synaptic propagation of a differentiable run that follows the spikes
// (brainsim/fit/_events.py, propagation = "events"), forward and backward, in C++.
//
// Rows r are (step, trial) pairs of one delay window, n neurons each; the connections are
// in CSR order (indptr [n + 1], post and weight with one trailing padding connection).
//
// forward:  I[r, post[e]] += out[r, i] w[e]  for the rows' nonzero outputs (the spikes)
// backward, given g = dL/dI:
//   dL/dw[e]      = sum over r of out[r, i] g[r, post[e]]       (the spikes' connections)
//   dL/dout[r, i] = sum over e of row i of w[e] g[r, post[e]]   only where near[r, i]
//                   (the surrogate derivative is nonzero there and exactly zero elsewhere)
//
// The JAX form lays every event out in slots of a static capacity and runs some ten
// whole-array passes over them; here the loops visit only the spikes and the near entries,
// the rows split over XLA's intra-op threads. Sums run in the outputs' float type in CSR
// order (the JAX form's scatter order may differ: equal to rounding).
#include <cstdint>
#include <cstring>
#include <string>

#include "common.h"

namespace brainsim_native {

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // entries worth handing to a second thread

struct Csr {
  bool wide;
  const int32_t* p32;
  const int64_t* p64;
  const int32_t* post;
  int64_t start(int64_t i) const { return wide ? p64[i] : p32[i]; }
};

// What both kernels check: out 2-D [rows, n]; weight (and g) of out's float type; indptr
// int32 or int64 [n + 1]; post as long as weight. An empty string: all well.
const char* check(ffi::AnyBuffer out, ffi::AnyBuffer w, ffi::AnyBuffer indptr,
                  ffi::Buffer<ffi::S32> post) {
  if (out.dimensions().size() != 2) return "out must be [rows, neurons]";
  if (w.element_type() != out.element_type()) return "weight must have out's float type";
  const auto it = indptr.element_type();
  if (it != ffi::DataType::S32 && it != ffi::DataType::S64) return "indptr: int32 or int64";
  if (indptr.element_count() != out.dimensions()[1] + 1) return "indptr must be [n + 1]";
  if (post.element_count() != w.element_count()) return "post and weight differ in length";
  return "";
}

ffi::Error invalid(const char* kernel, const char* why) {
  return ffi::Error::InvalidArgument(std::string(kernel) + ": " + why);
}

Csr csr_of(ffi::AnyBuffer indptr, ffi::Buffer<ffi::S32> post) {
  Csr c;
  c.wide = indptr.element_type() == ffi::DataType::S64;
  c.p32 = reinterpret_cast<const int32_t*>(indptr.untyped_data());
  c.p64 = reinterpret_cast<const int64_t*>(indptr.untyped_data());
  c.post = post.typed_data();
  return c;
}

template <typename T>
ffi::Error Forward(ffi::ThreadPool& pool, ffi::AnyBuffer out_buf, ffi::AnyBuffer w_buf,
                   ffi::AnyBuffer indptr, ffi::Buffer<ffi::S32> post,
                   ffi::Result<ffi::AnyBuffer> i_out) {
  if (const char* why = check(out_buf, w_buf, indptr, post); *why) {
    return invalid("brainsim_events_forward", why);
  }
  const auto dims = out_buf.dimensions();
  const int64_t rows = dims[0], n = dims[1];
  const T* out = reinterpret_cast<const T*>(out_buf.untyped_data());
  const T* w = reinterpret_cast<const T*>(w_buf.untyped_data());
  T* cur = reinterpret_cast<T*>(i_out->untyped_data());
  const Csr c = csr_of(indptr, post);
  const int workers = worker_count(pool.num_threads(), rows, rows * n, kParallelWork);
  run_parts(pool, workers, [&](int t) {
    const int64_t r0 = rows * t / workers, r1 = rows * (t + 1) / workers;
    std::memset(cur + r0 * n, 0, sizeof(T) * (r1 - r0) * n);
    for (int64_t r = r0; r < r1; ++r) {
      const T* o = out + r * n;
      T* dst = cur + r * n;
      for (int64_t i = 0; i < n; ++i) {
        if (o[i] == T(0)) continue;
        const T v = o[i];
        for (int64_t e = c.start(i), e1 = c.start(i + 1); e < e1; ++e) {
          dst[c.post[e]] += v * w[e];
        }
      }
    }
  });
  return ffi::Error::Success();
}

template <typename T>
ffi::Error Backward(ffi::ThreadPool& pool, ffi::AnyBuffer out_buf,
                    ffi::Buffer<ffi::PRED> near_buf, ffi::AnyBuffer w_buf,
                    ffi::AnyBuffer indptr, ffi::Buffer<ffi::S32> post, ffi::AnyBuffer g_buf,
                    ffi::Result<ffi::AnyBuffer> d_out_buf,
                    ffi::Result<ffi::AnyBuffer> d_w_buf) {
  if (const char* why = check(out_buf, w_buf, indptr, post); *why) {
    return invalid("brainsim_events_backward", why);
  }
  const auto dims = out_buf.dimensions();
  const int64_t rows = dims[0], n = dims[1];
  const int64_t n_w = w_buf.element_count();
  if (g_buf.element_type() != out_buf.element_type()) {
    return invalid("brainsim_events_backward", "g must have out's float type");
  }
  if (near_buf.element_count() != rows * n || g_buf.element_count() != rows * n) {
    return invalid("brainsim_events_backward", "near and g must be [rows, neurons] as out");
  }
  const T* out = reinterpret_cast<const T*>(out_buf.untyped_data());
  const bool* near = near_buf.typed_data();
  const T* w = reinterpret_cast<const T*>(w_buf.untyped_data());
  const T* g = reinterpret_cast<const T*>(g_buf.untyped_data());
  T* d_out = reinterpret_cast<T*>(d_out_buf->untyped_data());
  T* d_w = reinterpret_cast<T*>(d_w_buf->untyped_data());
  const Csr c = csr_of(indptr, post);
  // the weights: every connection of every spike (few), here, in row order
  std::memset(d_w, 0, sizeof(T) * n_w);
  for (int64_t r = 0; r < rows; ++r) {
    const T* o = out + r * n;
    const T* gr = g + r * n;
    for (int64_t i = 0; i < n; ++i) {
      if (o[i] == T(0)) continue;
      const T v = o[i];
      for (int64_t e = c.start(i), e1 = c.start(i + 1); e < e1; ++e) {
        d_w[e] += v * gr[c.post[e]];
      }
    }
  }
  // the outputs at the near entries (many), the rows split over the workers
  const int workers = worker_count(pool.num_threads(), rows, rows * n, kParallelWork);
  run_parts(pool, workers, [&](int t) {
    const int64_t r0 = rows * t / workers, r1 = rows * (t + 1) / workers;
    for (int64_t r = r0; r < r1; ++r) {
      const bool* nr = near + r * n;
      const T* gr = g + r * n;
      T* dst = d_out + r * n;
      for (int64_t i = 0; i < n; ++i) {
        T s = T(0);
        if (nr[i]) {
          for (int64_t e = c.start(i), e1 = c.start(i + 1); e < e1; ++e) {
            s += w[e] * gr[c.post[e]];
          }
        }
        dst[i] = s;
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error ForwardDispatch(ffi::ThreadPool pool, ffi::AnyBuffer out, ffi::AnyBuffer w,
                           ffi::AnyBuffer indptr, ffi::Buffer<ffi::S32> post,
                           ffi::Result<ffi::AnyBuffer> i_out) {
  return by_float_type(out.element_type(), "brainsim_events_forward", [&](auto zero) {
    return Forward<decltype(zero)>(pool, out, w, indptr, post, i_out);
  });
}

ffi::Error BackwardDispatch(ffi::ThreadPool pool, ffi::AnyBuffer out,
                            ffi::Buffer<ffi::PRED> near, ffi::AnyBuffer w,
                            ffi::AnyBuffer indptr, ffi::Buffer<ffi::S32> post, ffi::AnyBuffer g,
                            ffi::Result<ffi::AnyBuffer> d_out, ffi::Result<ffi::AnyBuffer> d_w) {
  return by_float_type(out.element_type(), "brainsim_events_backward", [&](auto zero) {
    return Backward<decltype(zero)>(pool, out, near, w, indptr, post, g, d_out, d_w);
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventsForward, ForwardDispatch,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()          // out [rows, n]
                                  .Arg<ffi::AnyBuffer>()          // weight [connections + 1]
                                  .Arg<ffi::AnyBuffer>()          // indptr [n + 1]
                                  .Arg<ffi::Buffer<ffi::S32>>()   // post [connections + 1]
                                  .Ret<ffi::AnyBuffer>());        // I [rows, n]

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventsBackward, BackwardDispatch,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()          // out [rows, n]
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // near [rows, n]
                                  .Arg<ffi::AnyBuffer>()          // weight
                                  .Arg<ffi::AnyBuffer>()          // indptr
                                  .Arg<ffi::Buffer<ffi::S32>>()   // post
                                  .Arg<ffi::AnyBuffer>()          // g = dL/dI [rows, n]
                                  .Ret<ffi::AnyBuffer>()          // dL/dout [rows, n]
                                  .Ret<ffi::AnyBuffer>());        // dL/dweight

}  // namespace brainsim_native

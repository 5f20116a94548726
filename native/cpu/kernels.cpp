// The CPU backend's entries of the op table (native/core/dispatch.h): tensor-level adapters
// from checked arguments to the raw kernels of this folder. No checks of shape, dtype or
// device here (core made them); data-dependent checks (NaN scans) are the kernels' own.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../core/check.h"
#include "../core/dispatch.h"
#include "../core/record_math.h"
#include "bf16.h"
#include "cholesky.h"
#include "clip.h"
#include "eigh.h"
#include "elementwise.h"
#include "factor.h"
#include "gemm.h"
#include "optim.h"
#include "precondition.h"
#include "record.h"
#include "reduce.h"

namespace kfac {

namespace {

using ops::PiDampingResult;
// the step record's kernels (native/cpu/record.cpp)
using cpu_record::copy_range_if;
using cpu_record::dot_many_to;
using cpu_record::ema_commit;
using cpu_record::sum_squares_to;
using cpu_record::trust_clip;

// NaN/Inf scan of a whole tensor: exponent bits all ones. Branch-free inner loop (the
// compiler vectorises it), an early exit per block; one thread, since a factor update's
// input is small next to the work done on it.
void check_finite_fast(const Tensor& t, const char* name) {
  const float* x = t.f32();
  const int64_t n = t.numel();
  for (int64_t i0 = 0; i0 < n; i0 += 4096) {
    const int64_t i1 = std::min(n, i0 + 4096);
    uint32_t bad = 0;
    for (int64_t i = i0; i < i1; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, sizeof u);
      bad |= uint32_t((u & 0x7f800000u) == 0x7f800000u);
    }
    if (bad) throw_arg(ErrorCode::NotFinite, name, "finite values", "NaN or Inf");
  }
}

const float* f32_or_null(TensorOpt t) { return t ? t->f32() : nullptr; }

// bfloat16 operands (a and b share the dtype: core checks), float32 C. The bf16 kernels
// (native/cpu/gemm_bf16*.cpp) take A untransposed with α = 1 and β ∈ {0, 1}; any other case
// widens the operands of each batch to float32 (exact) and runs sgemm — correct, not fast.
void matmul_bf16(const Tensor& a, const Tensor& b, const Tensor& c, const ops::MatmulOptions& opt, int64_t batch,
                 int64_t M, int64_t N, int64_t K, int64_t a_cols, int64_t b_cols, int64_t sa, int64_t sb) {
  const uint16_t* A = static_cast<const uint16_t*>(a.raw());
  const uint16_t* B = static_cast<const uint16_t*>(b.raw());
  if (M == 0 || N == 0) return;
  const bool direct = !opt.transA && K > 0 && opt.alpha == 1.f && (opt.beta == 0.f || opt.beta == 1.f);
  const int64_t a_elems = a.rank() == 3 ? sa : a.numel(), b_elems = b.rank() == 3 ? sb : b.numel();
  std::vector<float> wa(direct ? 0 : size_t(a_elems)), wb(direct ? 0 : size_t(b_elems));
  for (int64_t i = 0; i < batch; ++i) {
    float* Ci = c.f32() + i * M * N;
    if (direct) {
      cpu::gemm_bf16(M, N, K, A + i * sa, a_cols, B + i * sb, b_cols, opt.transB, Ci, N, opt.beta == 1.f);
      continue;
    }
    if (i == 0 || sa) cpu::convert_bf16_to_f32(A + i * sa, wa.data(), a_elems);
    if (i == 0 || sb) cpu::convert_bf16_to_f32(B + i * sb, wb.data(), b_elems);
    cpu::sgemm_strided_batched(1, opt.transA, opt.transB, M, N, K, opt.alpha, wa.data(), a_cols, 0, wb.data(), b_cols, 0,
                               opt.beta, Ci, N, M * N);
  }
}

void matmul(const Tensor& a, const Tensor& b, const Tensor& c, const ops::MatmulOptions& opt) {
  auto dims = [](const Tensor& t) {
    struct D { int64_t rows, cols; };
    return t.rank() == 2 ? D{t.dim(0), t.dim(1)} : D{t.dim(1), t.dim(2)};
  };
  auto da = dims(a), db = dims(b);
  const Shape& shape = c.shape();
  int64_t batch = shape.size() == 3 ? shape[0] : 1;
  int64_t M = shape[shape.size() - 2], N = shape[shape.size() - 1];
  int64_t K = opt.transA ? da.rows : da.cols;
  int64_t sa = a.rank() == 3 ? da.rows * da.cols : 0;
  int64_t sb = b.rank() == 3 ? db.rows * db.cols : 0;
  if (a.dtype() == DType::BF16) return matmul_bf16(a, b, c, opt, batch, M, N, K, da.cols, db.cols, sa, sb);
  cpu::sgemm_strided_batched(batch, opt.transA, opt.transB, M, N, K, opt.alpha, a.f32(), da.cols, sa, b.f32(),
                             db.cols, sb, opt.beta, c.f32(), N, M * N);
}

void fill(const Tensor& x, float value) { cpu::fill(x.f32(), x.numel(), value); }
void copy(const Tensor& src, const Tensor& dst) { std::memmove(dst.raw(), src.raw(), src.nbytes()); }

void copy_range(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count) {
  const size_t es = dtype_size(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw()) + size_t(dst_offset) * es,
              static_cast<const char*>(src.raw()) + size_t(src_offset) * es, size_t(count) * es);
}

// float32 ↔ bfloat16 (round to nearest even; NaN stays NaN).
void cast(const Tensor& src, const Tensor& dst) {
  const int64_t n = src.numel();
  if (src.dtype() == dst.dtype()) return copy(src, dst);
  if (src.dtype() == DType::F32 && dst.dtype() == DType::BF16) {
    const uint32_t* s = static_cast<const uint32_t*>(src.raw());
    uint16_t* d = static_cast<uint16_t*>(dst.raw());
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u = s[i];
      d[i] = (u & 0x7fffffffu) > 0x7f800000u ? uint16_t((u >> 16) | 0x40u) : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    return;
  }
  if (src.dtype() == DType::BF16 && dst.dtype() == DType::F32) {
    const uint16_t* s = static_cast<const uint16_t*>(src.raw());
    uint32_t* d = static_cast<uint32_t*>(dst.raw());
    for (int64_t i = 0; i < n; ++i) d[i] = uint32_t(s[i]) << 16;
    return;
  }
  throw_arg(ErrorCode::DType, "dtype", "float32 or bfloat16", dtype_name(dst.dtype()));
}

void add(const Tensor& a, const Tensor& b, const Tensor& out) { cpu::add(a.f32(), b.f32(), out.f32(), a.numel()); }
void scale(const Tensor& x, float alpha, const Tensor& out) { cpu::scale(x.f32(), alpha, out.f32(), x.numel()); }
void axpy(float alpha, const Tensor& x, const Tensor& y) { cpu::axpy(alpha, x.f32(), y.f32(), x.numel()); }

void transpose(const Tensor& x, const Tensor& out) {
  int64_t rows = x.dim(-2), cols = x.dim(-1);
  int64_t batch = (rows != 0 && cols != 0) ? x.numel() / (rows * cols) : 0;
  cpu::transpose(x.f32(), out.f32(), batch, rows, cols);
}

double sum(const Tensor& x) { return cpu::sum(x.f32(), x.numel()); }
double sum_squares(const Tensor& x) { return cpu::sum_squares(x.f32(), x.numel()); }
// Tensor by tensor with the kernel of sum_squares: the same sums, bit for bit, as one call each.
std::vector<double> sum_squares_many(const std::vector<Tensor>& xs) {
  std::vector<double> r(xs.size(), 0.0);
  for (size_t i = 0; i < xs.size(); ++i)
    if (xs[i].numel() > 0) r[i] = cpu::sum_squares(xs[i].f32(), xs[i].numel());
  return r;
}
double dot(const Tensor& x, const Tensor& y) { return cpu::dot(x.f32(), y.f32(), x.numel()); }
// Pair by pair with the kernel of dot: the same sums, bit for bit, as one call each.
std::vector<double> dot_many(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys) {
  std::vector<double> r(xs.size(), 0.0);
  for (size_t i = 0; i < xs.size(); ++i)
    if (xs[i].numel() > 0) r[i] = cpu::dot(xs[i].f32(), ys[i].f32(), xs[i].numel());
  return r;
}

void factor_update(const Tensor& x, const Tensor& F, const ops::FactorUpdateOptions& opt) {
  const int64_t d = x.dim(-1);
  const int64_t R = x.rank() == 1 ? 1 : x.numel() / d;
  if (opt.check_finite) check_finite_fast(x, "x");
  double alpha = (1.0 - double(opt.beta)) * opt.scale / double(R);
  cpu::factor_update(x.f32(), R, d, d, opt.bias, opt.beta, float(alpha), F.f32(), F.dim(0));
}

bool damped_inverse(const Tensor& a, float delta, const Tensor& out) {
  const int64_t n = a.dim(0);
  check_finite_fast(a, "a");
  return cpu::damped_inverse(a.f32(), n, n, delta, out.f32(), n, "a").used_f64;
}

void precondition_eigen(const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& dA, const Tensor& QG,
                        const Tensor& dG, float lambda, const Tensor& PW, TensorOpt Pb) {
  cpu::precondition_eigen(gW.f32(), f32_or_null(gb), gW.dim(0), gW.dim(1), QA.f32(), dA.f32(), QG.f32(), dG.f32(),
                          lambda, PW.f32(), Pb ? Pb->f32() : nullptr);
}

void precondition_inverse(const Tensor& gW, TensorOpt gb, const Tensor& Ainv, const Tensor& Ginv, const Tensor& PW,
                          TensorOpt Pb) {
  cpu::precondition_inverse(gW.f32(), f32_or_null(gb), gW.dim(0), gW.dim(1), Ainv.f32(), Ginv.f32(), PW.f32(),
                            Pb ? Pb->f32() : nullptr);
}

void precondition_ekfac(const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& QG, const Tensor& S, float c,
                        float lambda, const Tensor& PW, TensorOpt Pb) {
  cpu::precondition_ekfac(gW.f32(), f32_or_null(gb), gW.dim(0), gW.dim(1), QA.f32(), QG.f32(), S.f32(), c, lambda,
                          PW.f32(), Pb ? Pb->f32() : nullptr);
}

void ekfac_moments(const Tensor& x, const Tensor& g, const Tensor& QA, const Tensor& QG,
                   const ops::EkfacMomentsOptions& opt, const Tensor& acc) {
  const int64_t din = x.dim(-1), dout = g.dim(-1);
  cpu::ekfac_moments(x.f32(), g.f32(), x.numel() / din, din, dout, QA.f32(), QG.f32(), opt.bias, opt.alpha, opt.beta,
                     acc.f32());
}

// The terms of kron_quadratic_many into the step record (the same numbers, not returned).
void kron_quadratic_many_to(const std::vector<Tensor>& dWs, const std::vector<TensorOpt>& dbs,
                            const std::vector<Tensor>& As, const std::vector<Tensor>& Gs, const Tensor& record,
                            int64_t offset);

std::vector<double> kron_quadratic_many(const std::vector<Tensor>& dWs, const std::vector<TensorOpt>& dbs,
                                        const std::vector<Tensor>& As, const std::vector<Tensor>& Gs) {
  std::vector<double> r(dWs.size(), 0.0);
  for (size_t i = 0; i < dWs.size(); ++i)
    r[i] = cpu::kron_quadratic(dWs[i].f32(), f32_or_null(dbs[i]), dWs[i].dim(0), dWs[i].dim(1), As[i].f32(), Gs[i].f32());
  return r;
}

void kron_quadratic_many_to(const std::vector<Tensor>& dWs, const std::vector<TensorOpt>& dbs,
                            const std::vector<Tensor>& As, const std::vector<Tensor>& Gs, const Tensor& record,
                            int64_t offset) {
  const std::vector<double> q = kron_quadratic_many(dWs, dbs, As, Gs);
  for (size_t i = 0; i < q.size(); ++i) record_math::put(record.f32(), offset + int64_t(i), q[i]);
}

PiDampingResult pi_damping(const Tensor& A, const Tensor& G, float lambda) {
  cpu::PiDamping p = cpu::pi_damping(A.f32(), A.dim(0), G.f32(), G.dim(0), lambda);
  PiDampingResult r;
  r.pi = p.pi;
  r.damp_A = p.damp_A;
  r.damp_G = p.damp_G;
  return r;
}

PiDampingResult precondition_inverse_factors(const Tensor& gW, TensorOpt gb, const Tensor& A, const Tensor& G,
                                             float lambda, const Tensor& PW, TensorOpt Pb) {
  const int64_t dout = gW.dim(0), din = gW.dim(1), Da = A.dim(0);
  check_finite_fast(A, "A");
  check_finite_fast(G, "G");
  PiDampingResult r = pi_damping(A, G, lambda);
  thread_local std::vector<float> ainv, ginv;
  ainv.resize(size_t(Da * Da));
  ginv.resize(size_t(dout * dout));
  r.used_f64 = cpu::damped_inverse(A.f32(), Da, Da, float(r.damp_A), ainv.data(), Da, "A").used_f64;
  r.used_f64 = cpu::damped_inverse(G.f32(), dout, dout, float(r.damp_G), ginv.data(), dout, "G").used_f64 || r.used_f64;
  cpu::precondition_inverse(gW.f32(), f32_or_null(gb), dout, din, ainv.data(), ginv.data(), PW.f32(),
                            Pb ? Pb->f32() : nullptr);
  return r;
}

std::string indexed(const char* what, size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; }

ops::ClipResult clip_newton_step(const std::vector<Tensor>& steps, const std::vector<Tensor>* grads,
                                 const ops::ClipOptions& opt) {
  const size_t n = steps.size();
  std::vector<float*> ptrs(n);
  std::vector<const float*> cptrs(n), gptrs(n);
  std::vector<int64_t> sizes(n);
  for (size_t i = 0; i < n; ++i) {
    ptrs[i] = steps[i].f32();
    cptrs[i] = ptrs[i];
    sizes[i] = steps[i].numel();
    if (grads) gptrs[i] = (*grads)[i].f32();
  }
  ops::ClipResult r;
  r.norms.assign(n, 0.0);
  r.scales.assign(n, 1.0);
  r.clipped.assign(n, false);
  // Pass 1: reduce. Squares of floats summed in float64 cannot overflow, so a
  // non-finite sum means a NaN or Inf in that tensor.
  std::vector<double> ss(n);
  cpu::sum_squares_many(cptrs.data(), sizes.data(), int64_t(n), ss.data());
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(ss[i])) throw_arg(ErrorCode::NotFinite, indexed("tensors", i), "a finite step", "NaN or Inf");
    r.norms[i] = std::sqrt(ss[i]);
    total += ss[i];
  }
  r.total_norm = std::sqrt(total);
  if (opt.mode == ops::ClipMode::Fisher) {
    std::vector<double> vg(n);
    cpu::dot_many(cptrs.data(), gptrs.data(), sizes.data(), int64_t(n), vg.data());
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(vg[i]))
        throw_arg(ErrorCode::NotFinite, indexed("grads", i), "a finite gradient", "NaN or Inf (or an overflowing ⟨P, ∇W⟩)");
      sum += vg[i];
    }
    r.vg = sum;
    double q = opt.lr * opt.lr * std::fabs(sum);
    double s = q > 0.0 ? std::min(1.0, std::sqrt(opt.c / q)) : 1.0;
    r.scales.assign(n, s);
  } else if (opt.mode == ops::ClipMode::Global) {
    double s = r.total_norm > opt.max_norm ? opt.max_norm / r.total_norm : 1.0;
    r.scales.assign(n, s);
  } else {
    for (size_t i = 0; i < n; ++i) r.scales[i] = r.norms[i] > opt.max_norm ? opt.max_norm / r.norms[i] : 1.0;
  }
  // Pass 2: scale.
  std::vector<float> fs(n);
  for (size_t i = 0; i < n; ++i) {
    r.clipped[i] = r.scales[i] < 1.0;
    r.any_clipped = r.any_clipped || r.clipped[i];
    fs[i] = float(r.scales[i]);
  }
  cpu::scale_many(ptrs.data(), sizes.data(), fs.data(), int64_t(n));
  return r;
}

bool eigh(const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt) {
  return cpu::eigh(a.dim(0), a.f32(), values.f32(), vectors.f32(), opt).retried_double;
}

cpu::RefreshReport eigh_refresh(const Tensor& a, const Tensor& prev, TensorOpt prev_values, const Tensor& values,
                                const Tensor& vectors, const cpu::RefreshOptions& opt) {
  return cpu::eigh_refresh(a.dim(0), a.f32(), prev.f32(), f32_or_null(prev_values), values.f32(), vectors.f32(), opt);
}

int64_t eigh_batched(const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt) {
  return cpu::eigh_batched(a.dim(0), a.dim(1), a.f32(), values.f32(), vectors.f32(), opt);
}

// eigh_batched that reports instead of raising: the flag is 1 when every matrix was decomposed
// (float64 retries included) with finite results.
void eigh_batched_to(const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt,
                     const Tensor& record, int64_t slot) {
  bool ok = true;
  try {
    cpu::eigh_batched(a.dim(0), a.dim(1), a.f32(), values.f32(), vectors.f32(), opt);
  } catch (const Error&) {
    ok = false;
  }
  ok = ok && cpu::all_finite(values.f32(), values.numel()) && cpu::all_finite(vectors.f32(), vectors.numel());
  record_math::put(record.f32(), slot, ok ? 1.0 : 0.0);
}

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, TensorOpt vmax,
                const cpu::AdamWParams& p) {
  cpu::adamw_step(param.f32(), grad.f32(), m.f32(), v.f32(), vmax ? vmax->f32() : nullptr, param.numel(), p);
}

void sgd_step(const Tensor& param, const Tensor& grad, TensorOpt buf, const cpu::SgdParams& p) {
  cpu::sgd_step(param.f32(), grad.f32(), buf ? buf->f32() : nullptr, param.numel(), p);
}

}  // namespace

const Kernels& cpu_kernels() {
  static const Kernels k = [] {
    Kernels t;
#define KFAC_CPU_ENTRY(name, ret, params) t.name = name;
    KFAC_TENSOR_OP_LIST(KFAC_CPU_ENTRY)
#undef KFAC_CPU_ENTRY
    cpu_nn_kernels(t);
    return t;
  }();
  return k;
}

}  // namespace kfac

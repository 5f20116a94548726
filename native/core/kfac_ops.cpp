// Optimised even when the build passes no -O flag (binding.gyp's cflags! strips them).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "kfac_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../cpu/cholesky.h"
#include "../cpu/clip.h"
#include "../cpu/factor.h"
#include "../cpu/precondition.h"
#include "../cpu/reduce.h"
#include "check.h"

namespace kfac::ops {

namespace {

void check_input(const Tensor& t, const char* name) {
  check_f32(t, name);
  if (t.device() != Device::CPU)
    throw_arg(ErrorCode::Device, name, "a device this build supports (cpu)", device_name(t.device()));
}

void check_square(const Tensor& t, const char* name, int64_t n) {
  check_input(t, name);
  check_shape(t, name, {n, n});
}

void check_vector(const Tensor& t, const char* name, int64_t n) {
  check_input(t, name);
  check_shape(t, name, {n});
}

void check_unit_range(double v, const char* name, double lo, double hi, const char* want) {
  if (!std::isfinite(v) || v < lo || v > hi) throw_arg(ErrorCode::InvalidArgument, name, want, std::to_string(v));
}

// Common shape checks of both preconditioning methods; returns Da.
int64_t check_precondition_io(const Tensor& gW, const Tensor* gb, const Tensor& PW, const Tensor* Pb) {
  check_input(gW, "grad");
  check_rank(gW, "grad", 2, 2);
  int64_t dout = gW.dim(0), din = gW.dim(1);
  if (gb) check_vector(*gb, "gradBias", dout);
  check_input(PW, "out");
  check_shape(PW, "out", {dout, din});
  check_no_alias(gW, "grad", PW, "out");
  if (bool(gb) != bool(Pb))
    throw_arg(ErrorCode::InvalidArgument, gb ? "outBias" : "gradBias",
              "a bias output exactly when a bias gradient is given", gb ? "none" : "a tensor");
  if (Pb) {
    check_vector(*Pb, "outBias", dout);
    check_no_alias(gW, "grad", *Pb, "outBias");
    check_no_alias(*gb, "gradBias", *Pb, "outBias");
    check_no_alias(*gb, "gradBias", PW, "out");
    check_no_alias(PW, "out", *Pb, "outBias");
  }
  return din + (gb ? 1 : 0);
}

void check_not_out(const Tensor& in, const char* name, const Tensor& PW, const Tensor* Pb) {
  check_no_alias(in, name, PW, "out");
  if (Pb) check_no_alias(in, name, *Pb, "outBias");
}

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

void check_lambda(float lambda) {
  check_unit_range(lambda, "damping", 0.0, HUGE_VAL, "a finite number >= 0");
}

}  // namespace

void factor_update(const Tensor& x, const Tensor& F, const FactorUpdateOptions& opt) {
  check_input(x, "x");
  check_rank(x, "x", 1, kMaxRank);
  check_input(F, "factor");
  int64_t d = x.dim(-1);
  int64_t R = d > 0 ? x.numel() / d : 0;
  if (x.rank() == 1) R = 1;
  int64_t D = d + (opt.bias ? 1 : 0);
  check_shape(F, "factor", {D, D});
  check_no_alias(x, "x", F, "factor");
  check_unit_range(opt.beta, "beta", 0.0, 1.0, "a number in [0, 1]");
  check_unit_range(opt.scale, "scale", 0.0, 3.4e38, "a finite number >= 0");
  if (R == 0) throw_arg(ErrorCode::Shape, "x", "at least one row", "shape " + shape_str(x.shape()));
  check_finite_fast(x, "x");
  double alpha = (1.0 - double(opt.beta)) * opt.scale / double(R);
  cpu::factor_update(x.f32(), R, d, d, opt.bias, opt.beta, float(alpha), F.f32(), D);
}

bool damped_inverse(const Tensor& a, float delta, const Tensor& out) {
  check_input(a, "a");
  check_rank(a, "a", 2, 2);
  int64_t n = a.dim(0);
  check_square(a, "a", n);
  check_square(out, "out", n);
  check_finite_scalar(delta, "damping");
  if (a.raw() != out.raw()) check_no_alias(a, "a", out, "out");
  check_finite_fast(a, "a");
  return cpu::damped_inverse(a.f32(), n, n, delta, out.f32(), n, "a").used_f64;
}

void precondition_eigen(const Tensor& gW, const Tensor* gb, const Tensor& QA, const Tensor& dA,
                        const Tensor& QG, const Tensor& dG, float lambda, const Tensor& PW,
                        const Tensor* Pb) {
  int64_t Da = check_precondition_io(gW, gb, PW, Pb);
  int64_t dout = gW.dim(0), din = gW.dim(1);
  check_square(QA, "QA", Da);
  check_vector(dA, "dA", Da);
  check_square(QG, "QG", dout);
  check_vector(dG, "dG", dout);
  check_lambda(lambda);
  for (auto [t, n] : {std::pair{&QA, "QA"}, {&dA, "dA"}, {&QG, "QG"}, {&dG, "dG"}}) check_not_out(*t, n, PW, Pb);
  cpu::precondition_eigen(gW.f32(), gb ? gb->f32() : nullptr, dout, din, QA.f32(), dA.f32(), QG.f32(),
                          dG.f32(), lambda, PW.f32(), Pb ? Pb->f32() : nullptr);
}

void precondition_inverse(const Tensor& gW, const Tensor* gb, const Tensor& Ainv,
                          const Tensor& Ginv, const Tensor& PW, const Tensor* Pb) {
  int64_t Da = check_precondition_io(gW, gb, PW, Pb);
  int64_t dout = gW.dim(0), din = gW.dim(1);
  check_square(Ainv, "Ainv", Da);
  check_square(Ginv, "Ginv", dout);
  check_not_out(Ainv, "Ainv", PW, Pb);
  check_not_out(Ginv, "Ginv", PW, Pb);
  cpu::precondition_inverse(gW.f32(), gb ? gb->f32() : nullptr, dout, din, Ainv.f32(), Ginv.f32(),
                            PW.f32(), Pb ? Pb->f32() : nullptr);
}

PiDampingResult pi_damping(const Tensor& A, const Tensor& G, float lambda) {
  check_input(A, "A");
  check_rank(A, "A", 2, 2);
  check_square(A, "A", A.dim(0));
  check_input(G, "G");
  check_rank(G, "G", 2, 2);
  check_square(G, "G", G.dim(0));
  check_lambda(lambda);
  cpu::PiDamping p = cpu::pi_damping(A.f32(), A.dim(0), G.f32(), G.dim(0), lambda);
  PiDampingResult r;
  r.pi = p.pi;
  r.damp_A = p.damp_A;
  r.damp_G = p.damp_G;
  return r;
}

PiDampingResult precondition_inverse_factors(const Tensor& gW, const Tensor* gb, const Tensor& A,
                                             const Tensor& G, float lambda, const Tensor& PW,
                                             const Tensor* Pb) {
  int64_t Da = check_precondition_io(gW, gb, PW, Pb);
  int64_t dout = gW.dim(0), din = gW.dim(1);
  check_square(A, "A", Da);
  check_square(G, "G", dout);
  check_not_out(A, "A", PW, Pb);
  check_not_out(G, "G", PW, Pb);
  check_finite_fast(A, "A");
  check_finite_fast(G, "G");
  PiDampingResult r = pi_damping(A, G, lambda);
  thread_local std::vector<float> ainv, ginv;
  ainv.resize(size_t(Da * Da));
  ginv.resize(size_t(dout * dout));
  r.used_f64 = cpu::damped_inverse(A.f32(), Da, Da, float(r.damp_A), ainv.data(), Da, "A").used_f64;
  r.used_f64 = cpu::damped_inverse(G.f32(), dout, dout, float(r.damp_G), ginv.data(), dout, "G").used_f64 || r.used_f64;
  cpu::precondition_inverse(gW.f32(), gb ? gb->f32() : nullptr, dout, din, ainv.data(), ginv.data(),
                            PW.f32(), Pb ? Pb->f32() : nullptr);
  return r;
}

ClipResult clip_newton_step(const std::vector<Tensor>& steps, const std::vector<Tensor>* grads,
                            const ClipOptions& opt) {
  const size_t n = steps.size();
  auto name = [](const char* what, size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; };
  std::vector<float*> ptrs(n);
  std::vector<const float*> cptrs(n), gptrs(n);
  std::vector<int64_t> sizes(n);
  for (size_t i = 0; i < n; ++i) {
    const Tensor& t = steps[i];
    if (!t.defined() || t.dtype() != DType::F32 || t.device() != Device::CPU) check_input(t, name("tensors", i).c_str());
    ptrs[i] = t.f32();
    cptrs[i] = ptrs[i];
    sizes[i] = t.numel();
  }
  // No two steps may share memory (each would be scaled twice): sort by address, compare neighbours.
  {
    std::vector<size_t> order;
    for (size_t i = 0; i < n; ++i)
      if (sizes[i] > 0) order.push_back(i);  // empty tensors hold no memory
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return steps[a].raw() < steps[b].raw(); });
    for (size_t k = 1; k < order.size(); ++k) {
      size_t a = std::min(order[k - 1], order[k]), b = std::max(order[k - 1], order[k]);
      check_no_alias(steps[a], name("tensors", a).c_str(), steps[b], name("tensors", b).c_str());
    }
  }
  if (opt.mode == ClipMode::Fisher) {
    if (!grads) throw_arg(ErrorCode::InvalidArgument, "grads", "one gradient per step tensor", "none");
    if (grads->size() != n)
      throw_arg(ErrorCode::InvalidArgument, "grads", std::to_string(n) + " tensors like tensors",
                std::to_string(grads->size()));
    for (size_t i = 0; i < n; ++i) {
      const Tensor& g = (*grads)[i];
      if (!g.defined() || g.dtype() != DType::F32 || g.device() != Device::CPU || g.shape() != steps[i].shape()) {
        check_input(g, name("grads", i).c_str());
        check_same_shape(steps[i], name("tensors", i).c_str(), g, name("grads", i).c_str());
      }
      gptrs[i] = g.f32();
    }
    if (!std::isfinite(opt.c) || opt.c <= 0) throw_arg(ErrorCode::InvalidArgument, "c", "a finite number > 0", std::to_string(opt.c));
    if (!std::isfinite(opt.lr) || opt.lr <= 0) throw_arg(ErrorCode::InvalidArgument, "lr", "a finite number > 0", std::to_string(opt.lr));
  } else if (!std::isfinite(opt.max_norm) || opt.max_norm <= 0) {
    throw_arg(ErrorCode::InvalidArgument, "maxNorm", "a finite number > 0", std::to_string(opt.max_norm));
  }

  ClipResult r;
  r.norms.assign(n, 0.0);
  r.scales.assign(n, 1.0);
  r.clipped.assign(n, false);
  // Pass 1: reduce. Squares of floats summed in float64 cannot overflow, so a
  // non-finite sum means a NaN or Inf in that tensor.
  std::vector<double> ss(n);
  cpu::sum_squares_many(cptrs.data(), sizes.data(), int64_t(n), ss.data());
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(ss[i])) throw_arg(ErrorCode::NotFinite, name("tensors", i), "a finite step", "NaN or Inf");
    r.norms[i] = std::sqrt(ss[i]);
    total += ss[i];
  }
  r.total_norm = std::sqrt(total);
  if (opt.mode == ClipMode::Fisher) {
    std::vector<double> vg(n);
    cpu::dot_many(cptrs.data(), gptrs.data(), sizes.data(), int64_t(n), vg.data());
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(vg[i]))
        throw_arg(ErrorCode::NotFinite, name("grads", i), "a finite gradient", "NaN or Inf (or an overflowing ⟨P, ∇W⟩)");
      sum += vg[i];
    }
    r.vg = sum;
    double q = opt.lr * opt.lr * std::fabs(sum);
    double s = q > 0.0 ? std::min(1.0, std::sqrt(opt.c / q)) : 1.0;
    r.scales.assign(n, s);
  } else if (opt.mode == ClipMode::Global) {
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

}  // namespace kfac::ops

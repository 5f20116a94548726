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

#include "check.h"
#include "dispatch.h"

namespace kfac::ops {

namespace {

void check_input(const Tensor& t, const char* name) { check_f32(t, name); }

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

// No two tensors of a list that is written in place may share memory (each would be scaled twice):
// sorted by address, neighbours compared.
void check_disjoint(const std::vector<Tensor>& ts, const char* list) {
  std::vector<size_t> order;
  for (size_t i = 0; i < ts.size(); ++i)
    if (ts[i].numel() > 0) order.push_back(i);  // empty tensors hold no memory
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ts[a].raw() < ts[b].raw(); });
  const auto nm = [&](size_t i) { return std::string(list) + "[" + std::to_string(i) + "]"; };
  for (size_t k = 1; k < order.size(); ++k) {
    size_t a = std::min(order[k - 1], order[k]), b = std::max(order[k - 1], order[k]);
    check_no_alias(ts[a], nm(a).c_str(), ts[b], nm(b).c_str());
  }
}

// No tensor of list `a` shares memory with one of list `b` (tensors within a list may): one sort
// of both lists' byte ranges and a sweep keeping, per list, the open range reaching furthest —
// O(n log n), where checking every pair cost O(n²) (450 LoRA tensors: 200 000 pairs a step).
void check_apart(const std::vector<Tensor>& a, const char* an, const std::vector<Tensor>& b, const char* bn) {
  struct Range {
    uintptr_t lo, hi;
    bool in_b;
    size_t i;
  };
  std::vector<Range> rs;
  rs.reserve(a.size() + b.size());
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].numel() > 0) rs.push_back({uintptr_t(a[i].raw()), uintptr_t(a[i].raw()) + a[i].nbytes(), false, i});
  for (size_t i = 0; i < b.size(); ++i)
    if (b[i].numel() > 0) rs.push_back({uintptr_t(b[i].raw()), uintptr_t(b[i].raw()) + b[i].nbytes(), true, i});
  std::sort(rs.begin(), rs.end(), [](const Range& x, const Range& y) { return x.lo < y.lo; });
  const Range* open[2] = {nullptr, nullptr};  // per list, the range seen so far that ends last
  for (const Range& r : rs) {
    const Range* other = open[r.in_b ? 0 : 1];
    if (other && other->hi > r.lo) {
      const Range& ra = r.in_b ? *other : r;
      const Range& rb = r.in_b ? r : *other;
      const std::string na = std::string(an) + "[" + std::to_string(ra.i) + "]", nb = std::string(bn) + "[" + std::to_string(rb.i) + "]";
      check_no_alias(a[ra.i], na.c_str(), b[rb.i], nb.c_str());
    }
    const Range*& mine = open[r.in_b ? 1 : 0];
    if (!mine || r.hi > mine->hi) mine = &r;
  }
}

// The step record and its slots: float32, on `dev`, holding value slots [first, first + count).
void check_record(const Tensor& record, Device dev, int64_t first, int64_t count) {
  check_input(record, "record");
  if (record.device() != dev)
    throw_arg(ErrorCode::Device, "record", std::string("a tensor on ") + device_name(dev) + " like the tensors it records",
              device_name(record.device()));
  if (first < 0 || count < 0 || 2 * (first + count) > record.numel())
    throw_arg(ErrorCode::InvalidArgument, "offset",
              "value slots inside the record (" + std::to_string(record.numel() / 2) + " slots of two floats)",
              "slots " + std::to_string(first) + ".." + std::to_string(first + count - 1));
}

// One device for a list (its first tensor's, any other named), each float32; returns it.
Device list_device(const std::vector<Tensor>& ts, const char* list) {
  const auto nm = [&](size_t i) { return std::string(list) + "[" + std::to_string(i) + "]"; };
  const Device dev = common_device({{&ts[0], nm(0).c_str()}});
  for (size_t i = 0; i < ts.size(); ++i) {
    check_input(ts[i], nm(i).c_str());
    if (i > 0) common_device({{&ts[0], nm(0).c_str()}, {&ts[i], nm(i).c_str()}});
  }
  return dev;
}

void check_lambda(float lambda) {
  check_unit_range(lambda, "damping", 0.0, HUGE_VAL, "a finite number >= 0");
}

}  // namespace

void factor_update(const Tensor& x, const Tensor& F, const FactorUpdateOptions& opt) {
  const Device dev = common_device({{&x, "x"}, {&F, "factor"}});
  // x may be bfloat16 (a layer's bf16 activations) where the device's kernels store them; the
  // factor is float32 always.
  const bool bf16_ok = backend_registered(dev) && kernels_of(dev).bf16_activations;
  if (x.dtype() == DType::BF16 && !bf16_ok)
    throw_arg(ErrorCode::DType, "x", "float32 (factor_update takes bfloat16 inputs only on cuda)", "bfloat16");
  if (x.dtype() != DType::BF16) check_input(x, "x");
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
  KFAC_DISPATCH(dev, factor_update)(x, F, opt);
}

bool damped_inverse(const Tensor& a, float delta, const Tensor& out) {
  const Device dev = common_device({{&a, "a"}, {&out, "out"}});
  check_input(a, "a");
  check_rank(a, "a", 2, 2);
  int64_t n = a.dim(0);
  check_square(a, "a", n);
  check_square(out, "out", n);
  check_finite_scalar(delta, "damping");
  if (a.raw() != out.raw()) check_no_alias(a, "a", out, "out");
  return KFAC_DISPATCH(dev, damped_inverse)(a, delta, out);
}

void precondition_eigen(const Tensor& gW, const Tensor* gb, const Tensor& QA, const Tensor& dA,
                        const Tensor& QG, const Tensor& dG, float lambda, const Tensor& PW,
                        const Tensor* Pb) {
  const Device dev = common_device({{&gW, "grad"}, {gb, "gradBias"}, {&QA, "QA"}, {&dA, "dA"}, {&QG, "QG"},
                                    {&dG, "dG"}, {&PW, "out"}, {Pb, "outBias"}});
  int64_t Da = check_precondition_io(gW, gb, PW, Pb);
  int64_t dout = gW.dim(0);
  check_square(QA, "QA", Da);
  check_vector(dA, "dA", Da);
  check_square(QG, "QG", dout);
  check_vector(dG, "dG", dout);
  check_lambda(lambda);
  for (auto [t, n] : {std::pair{&QA, "QA"}, {&dA, "dA"}, {&QG, "QG"}, {&dG, "dG"}}) check_not_out(*t, n, PW, Pb);
  KFAC_DISPATCH(dev, precondition_eigen)(gW, gb, QA, dA, QG, dG, lambda, PW, Pb);
}

void precondition_inverse(const Tensor& gW, const Tensor* gb, const Tensor& Ainv,
                          const Tensor& Ginv, const Tensor& PW, const Tensor* Pb) {
  const Device dev = common_device({{&gW, "grad"}, {gb, "gradBias"}, {&Ainv, "Ainv"}, {&Ginv, "Ginv"},
                                    {&PW, "out"}, {Pb, "outBias"}});
  int64_t Da = check_precondition_io(gW, gb, PW, Pb);
  int64_t dout = gW.dim(0);
  check_square(Ainv, "Ainv", Da);
  check_square(Ginv, "Ginv", dout);
  check_not_out(Ainv, "Ainv", PW, Pb);
  check_not_out(Ginv, "Ginv", PW, Pb);
  KFAC_DISPATCH(dev, precondition_inverse)(gW, gb, Ainv, Ginv, PW, Pb);
}

void precondition_ekfac(const Tensor& gW, const Tensor* gb, const Tensor& QA, const Tensor& QG, const Tensor& S,
                        float c, float lambda, const Tensor& PW, const Tensor* Pb) {
  const Device dev = common_device({{&gW, "grad"}, {gb, "gradBias"}, {&QA, "QA"}, {&QG, "QG"}, {&S, "S"},
                                    {&PW, "out"}, {Pb, "outBias"}});
  int64_t Da = check_precondition_io(gW, gb, PW, Pb);
  int64_t dout = gW.dim(0);
  check_square(QA, "QA", Da);
  check_square(QG, "QG", dout);
  check_input(S, "S");
  check_shape(S, "S", {dout, Da});
  check_unit_range(c, "scale", 0.0, 3.4e38, "a finite number >= 0");
  check_lambda(lambda);
  for (auto [t, n] : {std::pair{&QA, "QA"}, {&QG, "QG"}, {&S, "S"}}) check_not_out(*t, n, PW, Pb);
  KFAC_DISPATCH(dev, precondition_ekfac)(gW, gb, QA, QG, S, c, lambda, PW, Pb);
}

void ekfac_moments(const Tensor& x, const Tensor& g, const Tensor& QA, const Tensor& QG,
                   const EkfacMomentsOptions& opt, const Tensor& acc) {
  const Device dev = common_device({{&x, "x"}, {&g, "g"}, {&QA, "QA"}, {&QG, "QG"}, {&acc, "acc"}});
  // x and g may be bfloat16 (a layer's bf16 activations and gradients) where the device's kernels
  // store them; Q_A, Q_G and acc are float32 always.
  const bool bf16_ok = backend_registered(dev) && kernels_of(dev).bf16_activations;
  for (auto [t, n] : {std::pair{&x, "x"}, {&g, "g"}}) {
    if (t->dtype() == DType::BF16 && !bf16_ok)
      throw_arg(ErrorCode::DType, n, "float32 (ekfac_moments takes bfloat16 rows only on cuda)", "bfloat16");
    if (t->dtype() != DType::BF16) check_input(*t, n);
    check_rank(*t, n, 1, kMaxRank);
  }
  const int64_t din = x.dim(-1), dout = g.dim(-1);
  if (din == 0) throw_arg(ErrorCode::Shape, "x", "at least one column", "shape " + shape_str(x.shape()));
  const int64_t R = x.numel() / din;
  if (R == 0) throw_arg(ErrorCode::Shape, "x", "at least one row", "shape " + shape_str(x.shape()));
  if (dout == 0 || g.numel() / dout != R)
    throw_arg(ErrorCode::Shape, "g", std::to_string(R) + " rows like x", "shape " + shape_str(g.shape()));
  const int64_t Da = din + (opt.bias ? 1 : 0);
  check_square(QA, "QA", Da);
  check_square(QG, "QG", dout);
  check_input(acc, "acc");
  check_shape(acc, "acc", {dout, Da});
  for (auto [t, n] : {std::pair{&x, "x"}, {&g, "g"}, {&QA, "QA"}, {&QG, "QG"}}) check_no_alias(*t, n, acc, "acc");
  check_unit_range(opt.alpha, "alpha", 0.0, 3.4e38, "a finite number >= 0");
  check_unit_range(opt.beta, "beta", 0.0, 1.0, "a number in [0, 1]");
  KFAC_DISPATCH(dev, ekfac_moments)(x, g, QA, QG, opt, acc);
}

double kron_quadratic(const Tensor& dW, const Tensor* db, const Tensor& A, const Tensor& G) {
  return kron_quadratic_many({dW}, {db}, {A}, {G})[0];
}

namespace {
// The terms' checks of kron_quadratic_many(_to); returns their device (n ≥ 1).
Device check_kron_terms(const std::vector<Tensor>& dWs, const std::vector<const Tensor*>& dbs,
                        const std::vector<Tensor>& As, const std::vector<Tensor>& Gs) {
  const size_t n = dWs.size();
  const Device dev = common_device({{&dWs[0], "dWs[0]"}});
  for (size_t i = 0; i < n; ++i) {
    // single terms keep the single op's argument names; a list's are indexed
    const auto nm = [&](const char* s) { return n == 1 ? std::string(s) : std::string(s) + "s[" + std::to_string(i) + "]"; };
    const std::string w = nm("dW"), b = nm("db"), a = nm("A"), g = nm("G");
    common_device({{&dWs[0], "dWs[0]"}, {&dWs[i], w.c_str()}, {dbs[i], b.c_str()}, {&As[i], a.c_str()}, {&Gs[i], g.c_str()}});
    check_input(dWs[i], w.c_str());
    check_rank(dWs[i], w.c_str(), 2, 2);
    const int64_t dout = dWs[i].dim(0), din = dWs[i].dim(1);
    if (dbs[i]) check_vector(*dbs[i], b.c_str(), dout);
    check_square(As[i], a.c_str(), din + (dbs[i] ? 1 : 0));
    check_square(Gs[i], g.c_str(), dout);
  }
  return dev;
}

void check_kron_sizes(size_t n, const std::vector<const Tensor*>& dbs, const std::vector<Tensor>& As,
                      const std::vector<Tensor>& Gs) {
  for (auto [size, name] : {std::pair{dbs.size(), "dbs"}, {As.size(), "As"}, {Gs.size(), "Gs"}})
    if (size != n) throw_arg(ErrorCode::Shape, name, std::to_string(n) + " entries (one per dWs)", std::to_string(size));
}
}  // namespace

std::vector<double> kron_quadratic_many(const std::vector<Tensor>& dWs, const std::vector<const Tensor*>& dbs,
                                        const std::vector<Tensor>& As, const std::vector<Tensor>& Gs) {
  check_kron_sizes(dWs.size(), dbs, As, Gs);
  if (dWs.empty()) return {};
  const Device dev = check_kron_terms(dWs, dbs, As, Gs);
  return KFAC_DISPATCH(dev, kron_quadratic_many)(dWs, dbs, As, Gs);
}

void kron_quadratic_many_to(const std::vector<Tensor>& dWs, const std::vector<const Tensor*>& dbs,
                            const std::vector<Tensor>& As, const std::vector<Tensor>& Gs, const Tensor& record,
                            int64_t offset) {
  check_kron_sizes(dWs.size(), dbs, As, Gs);
  if (dWs.empty()) return;
  const Device dev = check_kron_terms(dWs, dbs, As, Gs);
  check_record(record, dev, offset, int64_t(dWs.size()));
  KFAC_DISPATCH(dev, kron_quadratic_many_to)(dWs, dbs, As, Gs, record, offset);
}

PiDampingResult pi_damping(const Tensor& A, const Tensor& G, float lambda) {
  const Device dev = common_device({{&A, "A"}, {&G, "G"}});
  check_input(A, "A");
  check_rank(A, "A", 2, 2);
  check_square(A, "A", A.dim(0));
  check_input(G, "G");
  check_rank(G, "G", 2, 2);
  check_square(G, "G", G.dim(0));
  check_lambda(lambda);
  return KFAC_DISPATCH(dev, pi_damping)(A, G, lambda);
}

PiDampingResult precondition_inverse_factors(const Tensor& gW, const Tensor* gb, const Tensor& A,
                                             const Tensor& G, float lambda, const Tensor& PW,
                                             const Tensor* Pb) {
  const Device dev = common_device({{&gW, "grad"}, {gb, "gradBias"}, {&A, "A"}, {&G, "G"}, {&PW, "out"},
                                    {Pb, "outBias"}});
  int64_t Da = check_precondition_io(gW, gb, PW, Pb);
  int64_t dout = gW.dim(0);
  check_square(A, "A", Da);
  check_square(G, "G", dout);
  check_not_out(A, "A", PW, Pb);
  check_not_out(G, "G", PW, Pb);
  check_lambda(lambda);
  return KFAC_DISPATCH(dev, precondition_inverse_factors)(gW, gb, A, G, lambda, PW, Pb);
}

ClipResult clip_newton_step(const std::vector<Tensor>& steps, const std::vector<Tensor>* grads,
                            const ClipOptions& opt) {
  const size_t n = steps.size();
  auto name = [](const char* what, size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; };
  std::vector<int64_t> sizes(n);
  // One device for every step (and gradient): the first tensor's; any other is named.
  Device dev = Device::CPU;
  std::string first_name;
  auto same_device = [&](const Tensor& t, const std::string& nm) {
    if (first_name.empty()) {
      dev = t.device();
      first_name = nm;
    } else if (t.device() != dev) {
      throw_arg(ErrorCode::Device, nm, std::string("a tensor on ") + device_name(dev) + " like " + first_name,
                device_name(t.device()));
    }
  };
  for (size_t i = 0; i < n; ++i) {
    const Tensor& t = steps[i];
    if (!t.defined() || t.dtype() != DType::F32) check_input(t, name("tensors", i).c_str());
    same_device(t, name("tensors", i));
    sizes[i] = t.numel();
  }
  check_disjoint(steps, "tensors");
  if (opt.mode == ClipMode::Fisher) {
    if (!grads) throw_arg(ErrorCode::InvalidArgument, "grads", "one gradient per step tensor", "none");
    if (grads->size() != n)
      throw_arg(ErrorCode::InvalidArgument, "grads", std::to_string(n) + " tensors like tensors",
                std::to_string(grads->size()));
    for (size_t i = 0; i < n; ++i) {
      const Tensor& g = (*grads)[i];
      if (!g.defined() || g.dtype() != DType::F32 || g.shape() != steps[i].shape()) {
        check_input(g, name("grads", i).c_str());
        check_same_shape(steps[i], name("tensors", i).c_str(), g, name("grads", i).c_str());
      }
      same_device(g, name("grads", i));
    }
    if (!std::isfinite(opt.c) || opt.c <= 0) throw_arg(ErrorCode::InvalidArgument, "c", "a finite number > 0", std::to_string(opt.c));
    if (!std::isfinite(opt.lr) || opt.lr <= 0) throw_arg(ErrorCode::InvalidArgument, "lr", "a finite number > 0", std::to_string(opt.lr));
  } else if (!std::isfinite(opt.max_norm) || opt.max_norm <= 0) {
    throw_arg(ErrorCode::InvalidArgument, "maxNorm", "a finite number > 0", std::to_string(opt.max_norm));
  }

  return KFAC_DISPATCH(dev, clip_newton_step)(steps, opt.mode == ClipMode::Fisher ? grads : nullptr, opt);
}

void sum_squares_to(const std::vector<Tensor>& xs, const Tensor& record, int64_t offset, int64_t flag,
                    int64_t check_at, int64_t check_count) {
  if (check_count < 0) throw_arg(ErrorCode::InvalidArgument, "checkCount", "a count ≥ 0", std::to_string(check_count));
  if (check_count > 0 && flag < 0)
    throw_arg(ErrorCode::InvalidArgument, "flag", "a flag slot (the checked slots only gate the flag)", std::to_string(flag));
  if (xs.empty() && flag < 0) return;
  const Device dev = xs.empty() ? record.device() : list_device(xs, "tensors");
  check_record(record, dev, offset, int64_t(xs.size()));
  if (flag >= 0) check_record(record, dev, flag, 1);
  if (flag >= offset && flag < offset + int64_t(xs.size()))
    throw_arg(ErrorCode::InvalidArgument, "flag", "a slot outside the sums' slots", std::to_string(flag));
  if (check_count > 0) {
    check_record(record, dev, check_at, check_count);
    const auto inside = [&](int64_t s) { return s >= check_at && s < check_at + check_count; };
    if (inside(flag) || (!xs.empty() && check_at < offset + int64_t(xs.size()) && offset < check_at + check_count))
      throw_arg(ErrorCode::InvalidArgument, "checkAt", "checked slots apart from the sums' and the flag's",
                "slots " + std::to_string(check_at) + ".." + std::to_string(check_at + check_count - 1));
  }
  for (size_t i = 0; i < xs.size(); ++i) check_no_alias(xs[i], ("tensors[" + std::to_string(i) + "]").c_str(), record, "record");
  KFAC_DISPATCH(dev, sum_squares_to)(xs, record, offset, flag, check_count > 0 ? check_at : 0, check_count);
}

void dot_many_to(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, const Tensor& record, int64_t offset) {
  if (ys.size() != xs.size())
    throw_arg(ErrorCode::Shape, "ys", std::to_string(xs.size()) + " tensors (one per xs)", std::to_string(ys.size()));
  if (xs.empty()) return;
  const Device dev = list_device(xs, "xs");
  list_device(ys, "ys");
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::string x = "xs[" + std::to_string(i) + "]", y = "ys[" + std::to_string(i) + "]";
    common_device({{&xs[0], "xs[0]"}, {&ys[i], y.c_str()}});
    check_same_shape(xs[i], x.c_str(), ys[i], y.c_str());
  }
  check_record(record, dev, offset, int64_t(xs.size()));
  KFAC_DISPATCH(dev, dot_many_to)(xs, ys, record, offset);
}

void trust_clip(const std::vector<Tensor>& steps, const std::vector<Tensor>& params, const TrustClipOptions& opt,
                const Tensor& record, int64_t offset) {
  if (params.size() != steps.size())
    throw_arg(ErrorCode::InvalidArgument, "params", std::to_string(steps.size()) + " tensors (one per step)",
              std::to_string(params.size()));
  if (steps.empty()) throw_arg(ErrorCode::InvalidArgument, "steps", "at least one step tensor", "none");
  const Device dev = list_device(steps, "steps");
  list_device(params, "params");
  common_device({{&steps[0], "steps[0]"}, {&params[0], "params[0]"}});
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string s = "steps[" + std::to_string(i) + "]", p = "params[" + std::to_string(i) + "]";
    if (params[i].numel() != steps[i].numel())
      throw_arg(ErrorCode::Shape, p, std::to_string(steps[i].numel()) + " elements like " + s, std::to_string(params[i].numel()));
    check_no_alias(steps[i], s.c_str(), record, "record");
  }
  check_disjoint(steps, "steps");
  check_apart(steps, "steps", params, "params");
  check_record(record, dev, offset, kTrustClipSlots);
  if (!std::isfinite(opt.k) || opt.k <= 0) throw_arg(ErrorCode::InvalidArgument, "k", "a finite number > 0", std::to_string(opt.k));
  if (!std::isfinite(opt.floor) || opt.floor < 0)
    throw_arg(ErrorCode::InvalidArgument, "floor", "a finite number >= 0", std::to_string(opt.floor));
  if (!std::isfinite(opt.eps) || opt.eps < 0 || (opt.eps > 0 && (!opt.fixed || opt.per_tensor)))
    throw_arg(ErrorCode::InvalidArgument, "eps", "a finite number >= 0, and 0 unless fixed and global", std::to_string(opt.eps));
  KFAC_DISPATCH(dev, trust_clip)(steps, params, opt, record, offset);
}

void ema_commit(const Tensor& F, const Tensor& X, double beta, const Tensor& record, int64_t slot) {
  const Device dev = common_device({{&F, "F"}, {&X, "X"}, {&record, "record"}});
  check_input(F, "F");
  check_input(X, "X");
  check_same_shape(F, "F", X, "X");
  check_no_alias(F, "F", X, "X");
  check_no_alias(F, "F", record, "record");
  check_record(record, dev, slot, 1);
  check_unit_range(beta, "beta", 0.0, 1.0, "a number in [0, 1]");
  KFAC_DISPATCH(dev, ema_commit)(F, X, beta, record, slot);
}

void copy_range_if(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count,
                   const Tensor& record, int64_t slot) {
  const Device dev = common_device({{&src, "src"}, {&dst, "dst"}, {&record, "record"}});
  check_input(src, "src");
  check_input(dst, "dst");
  check_no_alias(src, "src", dst, "dst");
  check_no_alias(dst, "dst", record, "record");
  if (count < 0 || src_offset < 0 || dst_offset < 0 || src_offset + count > src.numel() || dst_offset + count > dst.numel())
    throw_arg(ErrorCode::InvalidArgument, "count",
              "ranges inside src (" + std::to_string(src.numel()) + ") and dst (" + std::to_string(dst.numel()) + ")",
              std::to_string(src_offset) + "+" + std::to_string(count) + " → " + std::to_string(dst_offset));
  check_record(record, dev, slot, 1);
  if (count > 0) KFAC_DISPATCH(dev, copy_range_if)(src, src_offset, dst, dst_offset, count, record, slot);
}

}  // namespace kfac::ops

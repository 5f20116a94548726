// Bindings of the K-FAC curvature ops (factor update, damped inverse, preconditioning,
// Newton-step clipping). Validation of meaning lives in TypeScript; shapes, dtypes and
// ranges are re-checked natively.
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../core/kfac_ops.h"
#include "args.h"
#include "errors.h"
#include "register.h"
#include "tensor_wrap.h"

namespace kfac::napi {

namespace {

Napi::Object pi_object(Napi::Env env, const ops::PiDampingResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("pi", Napi::Number::New(env, r.pi));
  o.Set("dampA", Napi::Number::New(env, r.damp_A));
  o.Set("dampG", Napi::Number::New(env, r.damp_G));
  o.Set("usedFloat64", Napi::Boolean::New(env, r.used_f64));
  return o;
}

// A list whose entries are tensors or nulls (`held` keeps the tensors; the pointers are into it).
std::vector<const Tensor*> optional_list(Napi::Value v, const char* name, std::vector<Tensor>& held) {
  if (!v.IsArray()) throw_arg(ErrorCode::InvalidArgument, name, "an array of tensors or nulls", "another value");
  Napi::Array arr = v.As<Napi::Array>();
  held.assign(arr.Length(), Tensor());
  std::vector<const Tensor*> out(arr.Length(), nullptr);
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string nm = std::string(name) + "[" + std::to_string(i) + "]";
    if (get_optional_tensor(arr.Get(i), nm.c_str(), held[i])) out[i] = &held[i];
  }
  return out;
}

// factorUpdate(x, factor, { beta, scale, bias, checkFinite }) → undefined; factor is overwritten (EMA)
KFAC_BINDING(FactorUpdate) {
  Tensor x = get_tensor(arg(info, 0), "x");
  Tensor F = get_tensor(arg(info, 1), "factor");
  Napi::Object o = get_options(arg(info, 2), "options");
  ops::FactorUpdateOptions opt;
  opt.beta = opt_float(o, "beta", opt.beta);
  opt.scale = opt_number(o, "scale", opt.scale);
  opt.bias = opt_flag(o, "bias", opt.bias);
  opt.check_finite = opt_flag(o, "checkFinite", opt.check_finite);
  ops::factor_update(x, F, opt);
  return info.Env().Undefined();
}

// dampedInverse(a, damping, out | null) → { out, usedFloat64 }
KFAC_BINDING(DampedInverse) {
  Tensor a = get_tensor(arg(info, 0), "a");
  float delta = get_float(arg(info, 1), "damping");
  Tensor out;
  bool has_out = get_optional_tensor(arg(info, 2), "out", out);
  if (!has_out) {
    if (a.rank() != 2) throw_arg(ErrorCode::Shape, "a", "2 dimensions", "shape " + shape_str(a.shape()));
    out = Tensor::empty(a.shape(), DType::F32, a.device());
  }
  bool f64 = ops::damped_inverse(a, delta, out);
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("out", has_out ? arg(info, 2) : Napi::Value(TensorWrap::wrap(info.Env(), out)));
  r.Set("usedFloat64", Napi::Boolean::New(info.Env(), f64));
  return r;
}

// preconditionEigen(grad, gradBias | null, QA, dA, QG, dG, damping, out, outBias | null)
KFAC_BINDING(PreconditionEigen) {
  Tensor gW = get_tensor(arg(info, 0), "grad");
  Tensor gb, Pb;
  bool has_b = get_optional_tensor(arg(info, 1), "gradBias", gb);
  Tensor QA = get_tensor(arg(info, 2), "QA");
  Tensor dA = get_tensor(arg(info, 3), "dA");
  Tensor QG = get_tensor(arg(info, 4), "QG");
  Tensor dG = get_tensor(arg(info, 5), "dG");
  float lambda = get_float(arg(info, 6), "damping");
  Tensor PW = get_tensor(arg(info, 7), "out");
  bool has_pb = get_optional_tensor(arg(info, 8), "outBias", Pb);
  ops::precondition_eigen(gW, has_b ? &gb : nullptr, QA, dA, QG, dG, lambda, PW, has_pb ? &Pb : nullptr);
  return info.Env().Undefined();
}

// preconditionEkfac(grad, gradBias | null, QA, QG, S, scale, damping, out, outBias | null)
KFAC_BINDING(PreconditionEkfac) {
  Tensor gW = get_tensor(arg(info, 0), "grad");
  Tensor gb, Pb;
  bool has_b = get_optional_tensor(arg(info, 1), "gradBias", gb);
  Tensor QA = get_tensor(arg(info, 2), "QA");
  Tensor QG = get_tensor(arg(info, 3), "QG");
  Tensor S = get_tensor(arg(info, 4), "S");
  float c = get_float(arg(info, 5), "scale");
  float lambda = get_float(arg(info, 6), "damping");
  Tensor PW = get_tensor(arg(info, 7), "out");
  bool has_pb = get_optional_tensor(arg(info, 8), "outBias", Pb);
  ops::precondition_ekfac(gW, has_b ? &gb : nullptr, QA, QG, S, c, lambda, PW, has_pb ? &Pb : nullptr);
  return info.Env().Undefined();
}

// ekfacMoments(x, g, QA, QG, acc, { alpha, beta, bias }) → undefined; acc is overwritten through beta
KFAC_BINDING(EkfacMoments) {
  Tensor x = get_tensor(arg(info, 0), "x");
  Tensor g = get_tensor(arg(info, 1), "g");
  Tensor QA = get_tensor(arg(info, 2), "QA");
  Tensor QG = get_tensor(arg(info, 3), "QG");
  Tensor acc = get_tensor(arg(info, 4), "acc");
  Napi::Object o = get_options(arg(info, 5), "options");
  ops::EkfacMomentsOptions opt;
  opt.alpha = opt_float(o, "alpha", opt.alpha);
  opt.beta = opt_float(o, "beta", opt.beta);
  opt.bias = opt_flag(o, "bias", opt.bias);
  ops::ekfac_moments(x, g, QA, QG, opt, acc);
  return info.Env().Undefined();
}

// kronQuadraticMany(dWs, dbs (entries null for no bias), As, Gs) → Float64Array of ⟨[dW|db], G [dW|db] A⟩
KFAC_BINDING(KronQuadraticMany) {
  std::vector<Tensor> dWs = get_tensor_list(arg(info, 0), "dWs");
  std::vector<Tensor> held;
  std::vector<const Tensor*> dbs = optional_list(arg(info, 1), "dbs", held);
  std::vector<double> r = ops::kron_quadratic_many(dWs, dbs, get_tensor_list(arg(info, 2), "As"), get_tensor_list(arg(info, 3), "Gs"));
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), r.size());
  for (size_t i = 0; i < r.size(); ++i) out[i] = r[i];
  return out;
}

// preconditionInverse(grad, gradBias | null, Ainv, Ginv, out, outBias | null)
KFAC_BINDING(PreconditionInverse) {
  Tensor gW = get_tensor(arg(info, 0), "grad");
  Tensor gb, Pb;
  bool has_b = get_optional_tensor(arg(info, 1), "gradBias", gb);
  Tensor Ainv = get_tensor(arg(info, 2), "Ainv");
  Tensor Ginv = get_tensor(arg(info, 3), "Ginv");
  Tensor PW = get_tensor(arg(info, 4), "out");
  bool has_pb = get_optional_tensor(arg(info, 5), "outBias", Pb);
  ops::precondition_inverse(gW, has_b ? &gb : nullptr, Ainv, Ginv, PW, has_pb ? &Pb : nullptr);
  return info.Env().Undefined();
}

// preconditionInverseFactors(grad, gradBias | null, A, G, damping, out, outBias | null)
//   → { pi, dampA, dampG, usedFloat64 }
KFAC_BINDING(PreconditionInverseFactors) {
  Tensor gW = get_tensor(arg(info, 0), "grad");
  Tensor gb, Pb;
  bool has_b = get_optional_tensor(arg(info, 1), "gradBias", gb);
  Tensor A = get_tensor(arg(info, 2), "A");
  Tensor G = get_tensor(arg(info, 3), "G");
  float lambda = get_float(arg(info, 4), "damping");
  Tensor PW = get_tensor(arg(info, 5), "out");
  bool has_pb = get_optional_tensor(arg(info, 6), "outBias", Pb);
  ops::PiDampingResult r =
      ops::precondition_inverse_factors(gW, has_b ? &gb : nullptr, A, G, lambda, PW, has_pb ? &Pb : nullptr);
  return pi_object(info.Env(), r);
}

// piDamping(A, G, damping) → { pi, dampA, dampG, usedFloat64: false }
KFAC_BINDING(PiDamping) {
  Tensor A = get_tensor(arg(info, 0), "A");
  Tensor G = get_tensor(arg(info, 1), "G");
  float lambda = get_float(arg(info, 2), "damping");
  return pi_object(info.Env(), ops::pi_damping(A, G, lambda));
}

// clipNewtonStep(tensors, { mode: 'global' | 'per-tensor' | 'fisher', maxNorm, c, lr, grads })
//   → { norms, totalNorm, scales, clipped, anyClipped, vg }; tensors are scaled in place
KFAC_BINDING(ClipNewtonStep) {
  Napi::Env env = info.Env();
  std::vector<Tensor> steps = get_tensor_list(arg(info, 0), "tensors");
  Napi::Object o = get_options(arg(info, 1), "options");
  ops::ClipOptions opt;
  const ops::ClipMode modes[] = {ops::ClipMode::Global, ops::ClipMode::PerTensor, ops::ClipMode::Fisher};
  opt.mode = modes[get_choice(field(o, "mode"), "mode", {"global", "per-tensor", "fisher"}, 0)];
  std::vector<Tensor> grads;
  if (opt.mode == ops::ClipMode::Fisher) {
    opt.c = get_number(field(o, "c"), "c");
    opt.lr = get_number(field(o, "lr"), "lr");
    grads = get_tensor_list(field(o, "grads"), "grads");
  } else {
    opt.max_norm = get_number(field(o, "maxNorm"), "maxNorm");
  }
  ops::ClipResult r = ops::clip_newton_step(steps, opt.mode == ops::ClipMode::Fisher ? &grads : nullptr, opt);
  Napi::Object out = Napi::Object::New(env);
  out.Set("norms", number_array(env, r.norms));
  out.Set("totalNorm", Napi::Number::New(env, r.total_norm));
  out.Set("scales", number_array(env, r.scales));
  Napi::Array clipped = Napi::Array::New(env, r.clipped.size());
  for (size_t i = 0; i < r.clipped.size(); ++i) clipped.Set(uint32_t(i), Napi::Boolean::New(env, r.clipped[i]));
  out.Set("clipped", clipped);
  out.Set("anyClipped", Napi::Boolean::New(env, r.any_clipped));
  out.Set("vg", Napi::Number::New(env, r.vg));
  return out;
}

// sumSquaresTo(tensors, record, offset, flag, checkAt?, checkCount?) → undefined: Σx² of each
// tensor into the record's value slots from `offset`, and the all-finite flag into slot `flag`
// (−1: none), which also needs slots [checkAt, checkAt + checkCount) finite; no download
KFAC_BINDING(SumSquaresTo) {
  std::vector<Tensor> xs = get_tensor_list(arg(info, 0), "tensors");
  Tensor record = get_tensor(arg(info, 1), "record");
  const int64_t offset = get_int(arg(info, 2), "offset", 0, INT64_MAX / 4);
  const int64_t flag = get_int(arg(info, 3), "flag", -1, INT64_MAX / 4);
  const bool checks = info.Length() > 5 && !info[5].IsUndefined();
  const int64_t check_count = checks ? get_int(info[5], "checkCount", 0, INT64_MAX / 4) : 0;
  const int64_t check_at = checks ? get_int(arg(info, 4), "checkAt", 0, INT64_MAX / 4) : -1;
  ops::sum_squares_to(xs, record, offset, flag, check_at, check_count);
  return info.Env().Undefined();
}

// trustClip(steps, params, { k, floor, perTensor, fixed?, eps? }, record, offset) → undefined:
// the trust-ratio (or, fixed, the norm) clip in place on the steps, its outcome into the
// record's slots from `offset`; no download
KFAC_BINDING(TrustClip) {
  std::vector<Tensor> steps = get_tensor_list(arg(info, 0), "steps");
  std::vector<Tensor> params = get_tensor_list(arg(info, 1), "params");
  Napi::Object o = get_options(arg(info, 2), "options");
  ops::TrustClipOptions opt;
  opt.k = opt_number(o, "k", opt.k);
  opt.floor = opt_number(o, "floor", opt.floor);
  opt.per_tensor = opt_flag(o, "perTensor", opt.per_tensor);
  opt.fixed = opt_flag(o, "fixed", opt.fixed);
  opt.eps = opt_number(o, "eps", opt.eps);
  Tensor record = get_tensor(arg(info, 3), "record");
  ops::trust_clip(steps, params, opt, record, get_int(arg(info, 4), "offset", 0, INT64_MAX / 4));
  return info.Env().Undefined();
}

// dotManyTo(xs, ys, record, offset) → undefined: Σxy of each pair into the record's slots from `offset`
KFAC_BINDING(DotManyTo) {
  std::vector<Tensor> xs = get_tensor_list(arg(info, 0), "xs");
  std::vector<Tensor> ys = get_tensor_list(arg(info, 1), "ys");
  Tensor record = get_tensor(arg(info, 2), "record");
  ops::dot_many_to(xs, ys, record, get_int(arg(info, 3), "offset", 0, INT64_MAX / 4));
  return info.Env().Undefined();
}

// kronQuadraticManyTo(dWs, dbs (entries null for no bias), As, Gs, record, offset) → undefined
KFAC_BINDING(KronQuadraticManyTo) {
  std::vector<Tensor> dWs = get_tensor_list(arg(info, 0), "dWs");
  std::vector<Tensor> held;
  std::vector<const Tensor*> dbs = optional_list(arg(info, 1), "dbs", held);
  Tensor record = get_tensor(arg(info, 4), "record");
  ops::kron_quadratic_many_to(dWs, dbs, get_tensor_list(arg(info, 2), "As"), get_tensor_list(arg(info, 3), "Gs"), record,
                              get_int(arg(info, 5), "offset", 0, INT64_MAX / 4));
  return info.Env().Undefined();
}

// copyRangeIf(src, srcOffset, dst, dstOffset, count, record, slot) → undefined: the copy when
// the record's slot `slot` is not 0
KFAC_BINDING(CopyRangeIf) {
  Tensor src = get_tensor(arg(info, 0), "src");
  const int64_t so = get_int(arg(info, 1), "srcOffset", 0, INT64_MAX / 4);
  Tensor dst = get_tensor(arg(info, 2), "dst");
  const int64_t dof = get_int(arg(info, 3), "dstOffset", 0, INT64_MAX / 4);
  const int64_t count = get_int(arg(info, 4), "count", 0, INT64_MAX / 4);
  Tensor record = get_tensor(arg(info, 5), "record");
  ops::copy_range_if(src, so, dst, dof, count, record, get_int(arg(info, 6), "slot", 0, INT64_MAX / 4));
  return info.Env().Undefined();
}

// emaCommit(F, X, beta, record, slot) → undefined: F ← βF + (1 − β)X when record slot `slot` ≠ 0
KFAC_BINDING(EmaCommit) {
  Tensor F = get_tensor(arg(info, 0), "F");
  Tensor X = get_tensor(arg(info, 1), "X");
  const double beta = get_finite(arg(info, 2), "beta");
  Tensor record = get_tensor(arg(info, 3), "record");
  ops::ema_commit(F, X, beta, record, get_int(arg(info, 4), "slot", 0, INT64_MAX / 4));
  return info.Env().Undefined();
}

const Binding kBindings[] = {
    {"factorUpdate", FactorUpdate},
    {"sumSquaresTo", SumSquaresTo},
    {"trustClip", TrustClip},
    {"emaCommit", EmaCommit},
    {"copyRangeIf", CopyRangeIf},
    {"dotManyTo", DotManyTo},
    {"kronQuadraticManyTo", KronQuadraticManyTo},
    {"dampedInverse", DampedInverse},
    {"preconditionEigen", PreconditionEigen},
    {"preconditionEkfac", PreconditionEkfac},
    {"ekfacMoments", EkfacMoments},
    {"kronQuadraticMany", KronQuadraticMany},
    {"preconditionInverse", PreconditionInverse},
    {"preconditionInverseFactors", PreconditionInverseFactors},
    {"piDamping", PiDamping},
    {"clipNewtonStep", ClipNewtonStep},
};

}  // namespace

void register_kfac_ops(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi

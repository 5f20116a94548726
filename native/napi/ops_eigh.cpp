// Bindings of the symmetric eigendecomposition family.
#include <napi.h>

#include "../core/ops_eigh.h"
#include "../cpu/eigh_util.h"
#include "args.h"
#include "errors.h"
#include "register.h"
#include "tensor_wrap.h"

namespace kfac::napi {

namespace {

bool read_clamp(Napi::Object o) {
  Napi::Value v = field(o, "clampNonNegative");
  return v.IsUndefined() ? false : get_bool(v, "clampNonNegative");
}

// The JS handle for t: the caller's own object when it passed one, else a new one.
Napi::Value handle(const Napi::CallbackInfo& info, size_t i, bool given, const Tensor& t) {
  return given ? arg(info, i) : Napi::Value(TensorWrap::wrap(info.Env(), t));
}

// eigh(a, values | null, vectors | null, { clampNonNegative })
//   → { values, vectors, retriedFloat64 }
KFAC_BINDING(Eigh) {
  Tensor a = get_tensor(arg(info, 0), "a");
  Tensor vo, qo;
  bool hv = get_optional_tensor(arg(info, 1), "values", vo);
  bool hq = get_optional_tensor(arg(info, 2), "vectors", qo);
  cpu::EighOptions opt;
  opt.clamp_nonneg = read_clamp(get_options(arg(info, 3), "options"));
  ops::EighOut r = ops::eigh(a, hv ? &vo : nullptr, hq ? &qo : nullptr, opt);
  Napi::Object res = Napi::Object::New(info.Env());
  res.Set("values", handle(info, 1, hv, r.values));
  res.Set("vectors", handle(info, 2, hq, r.vectors));
  res.Set("retriedFloat64", Napi::Boolean::New(info.Env(), r.retried_double));
  return res;
}

// eighRefresh(a, previousVectors, previousValues | null, values | null, vectors | null,
//             { clampNonNegative, maxResidual, maxOffDiagonal })
//   → { values, vectors, residual, offDiagonal, fellBack, keptPrevious, retriedFloat64, sweeps }
KFAC_BINDING(EighRefresh) {
  Tensor a = get_tensor(arg(info, 0), "a");
  Tensor prev = get_tensor(arg(info, 1), "previousVectors");
  Tensor pv, vo, qo;
  bool hp = get_optional_tensor(arg(info, 2), "previousValues", pv);
  bool hv = get_optional_tensor(arg(info, 3), "values", vo);
  bool hq = get_optional_tensor(arg(info, 4), "vectors", qo);
  Napi::Object o = get_options(arg(info, 5), "options");
  cpu::RefreshOptions opt;
  opt.clamp_nonneg = read_clamp(o);
  Napi::Value v;
  if (!(v = field(o, "maxResidual")).IsUndefined()) opt.max_residual = get_finite(v, "maxResidual");
  if (!(v = field(o, "maxOffDiagonal")).IsUndefined()) opt.max_offdiag = get_finite(v, "maxOffDiagonal");
  ops::EighRefreshOut r =
      ops::eigh_refresh(a, prev, hp ? &pv : nullptr, hv ? &vo : nullptr, hq ? &qo : nullptr, opt);
  Napi::Env env = info.Env();
  Napi::Object res = Napi::Object::New(env);
  res.Set("values", handle(info, 3, hv, r.values));
  res.Set("vectors", handle(info, 4, hq, r.vectors));
  res.Set("residual", Napi::Number::New(env, r.report.residual));
  res.Set("offDiagonal", Napi::Number::New(env, r.report.offdiag));
  res.Set("fellBack", Napi::Boolean::New(env, r.report.fell_back));
  res.Set("keptPrevious", Napi::Boolean::New(env, r.report.kept_previous));
  res.Set("retriedFloat64", Napi::Boolean::New(env, r.report.retried_double));
  res.Set("sweeps", Napi::Number::New(env, r.report.sweeps));
  return res;
}

// eighBatched(a, values | null, vectors | null, { clampNonNegative })
//   → { values, vectors, retried }
KFAC_BINDING(EighBatched) {
  Tensor a = get_tensor(arg(info, 0), "a");
  Tensor vo, qo;
  bool hv = get_optional_tensor(arg(info, 1), "values", vo);
  bool hq = get_optional_tensor(arg(info, 2), "vectors", qo);
  cpu::EighOptions opt;
  opt.clamp_nonneg = read_clamp(get_options(arg(info, 3), "options"));
  ops::EighBatchedOut r = ops::eigh_batched(a, hv ? &vo : nullptr, hq ? &qo : nullptr, opt);
  Napi::Object res = Napi::Object::New(info.Env());
  res.Set("values", handle(info, 1, hv, r.values));
  res.Set("vectors", handle(info, 2, hq, r.vectors));
  res.Set("retried", Napi::Number::New(info.Env(), double(r.retried)));
  return res;
}

// eighBatchedTo(a, values, vectors, { clampNonNegative }, record, slot) → undefined: the flag
// (1: every matrix solved, finite) into the record's value slot; nothing waits for the device
KFAC_BINDING(EighBatchedTo) {
  Tensor a = get_tensor(arg(info, 0), "a");
  Tensor values = get_tensor(arg(info, 1), "values");
  Tensor vectors = get_tensor(arg(info, 2), "vectors");
  cpu::EighOptions opt;
  opt.clamp_nonneg = read_clamp(get_options(arg(info, 3), "options"));
  Tensor record = get_tensor(arg(info, 4), "record");
  ops::eigh_batched_to(a, values, vectors, opt, record, get_int(arg(info, 5), "slot", 0, INT64_MAX / 4));
  return info.Env().Undefined();
}

// _eighFaultInjection(mode): test hook; 1 fails float32 solves, 2 fails float64 too, 3 fails
// batched solves (only), 0 off.
KFAC_BINDING(EighFaultInjection) {
  cpu::eig::set_fault_injection(int(get_int(arg(info, 0), "mode", 0, 3)));
  return info.Env().Undefined();
}

const Binding kBindings[] = {
    {"eigh", Eigh},
    {"eighRefresh", EighRefresh},
    {"eighBatched", EighBatched},
    {"eighBatchedTo", EighBatchedTo},
    {"_eighFaultInjection", EighFaultInjection},
};

}  // namespace

void register_eigh_ops(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi

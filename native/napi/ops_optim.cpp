// Bindings of the optimizer update family (AdamW, SGD).
#include <napi.h>

#include "../core/check.h"
#include "../cpu/optim.h"
#include "args.h"
#include "errors.h"
#include "register.h"

namespace kfac::napi {

namespace {

void check_like(const Tensor& t, const char* name, const Tensor& param) {
  check_f32(t, name);
  if (t.device() != Device::CPU) throw_arg(ErrorCode::Device, name, "a cpu tensor", device_name(t.device()));
  check_same_shape(param, "param", t, name);
}

double opt_num(Napi::Object o, const char* key, double fallback, double lo, double hi) {
  Napi::Value v = field(o, key);
  if (v.IsUndefined()) return fallback;
  double d = get_finite(v, key);
  if (d < lo || d > hi)
    throw_arg(ErrorCode::InvalidArgument, key, "a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", describe(v));
  return d;
}

bool opt_bool(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = field(o, key);
  return v.IsUndefined() ? fallback : get_bool(v, key);
}

// adamwStep(param, grad, expAvg, expAvgSq, maxExpAvgSq | null, { lr, beta1, beta2, eps, weightDecay, step, amsgrad, maximize })
KFAC_BINDING(AdamwStep) {
  Tensor param = get_tensor(arg(info, 0), "param");
  check_like(param, "param", param);
  Tensor grad = get_tensor(arg(info, 1), "grad");
  check_like(grad, "grad", param);
  Tensor m = get_tensor(arg(info, 2), "expAvg");
  check_like(m, "expAvg", param);
  Tensor v = get_tensor(arg(info, 3), "expAvgSq");
  check_like(v, "expAvgSq", param);
  Tensor vmax;
  bool has_max = get_optional_tensor(arg(info, 4), "maxExpAvgSq", vmax);
  Napi::Object o = get_options(arg(info, 5), "options");
  cpu::AdamWParams p;
  p.lr = opt_num(o, "lr", p.lr, 0, 1e6);
  p.beta1 = opt_num(o, "beta1", p.beta1, 0, 1);
  p.beta2 = opt_num(o, "beta2", p.beta2, 0, 1);
  p.eps = opt_num(o, "eps", p.eps, 0, 1e6);
  p.weight_decay = opt_num(o, "weightDecay", p.weight_decay, 0, 1e6);
  p.step = int64_t(opt_num(o, "step", 1, 1, 9007199254740991.0));
  p.amsgrad = opt_bool(o, "amsgrad", false);
  p.maximize = opt_bool(o, "maximize", false);
  if (p.beta1 >= 1 || p.beta2 >= 1)
    throw_arg(ErrorCode::InvalidArgument, "beta1/beta2", "values in [0, 1)", "1");
  if (p.amsgrad && !has_max)
    throw_arg(ErrorCode::InvalidArgument, "maxExpAvgSq", "a tensor when amsgrad is on", "null");
  if (has_max) check_like(vmax, "maxExpAvgSq", param);
  check_no_alias(param, "param", grad, "grad");
  cpu::adamw_step(param.f32(), grad.f32(), m.f32(), v.f32(), has_max ? vmax.f32() : nullptr,
                  param.numel(), p);
  return info.Env().Undefined();
}

// sgdStep(param, grad, momentumBuffer | null, { lr, momentum, dampening, weightDecay, nesterov, maximize, firstStep })
KFAC_BINDING(SgdStep) {
  Tensor param = get_tensor(arg(info, 0), "param");
  check_like(param, "param", param);
  Tensor grad = get_tensor(arg(info, 1), "grad");
  check_like(grad, "grad", param);
  Tensor buf;
  bool has_buf = get_optional_tensor(arg(info, 2), "momentumBuffer", buf);
  Napi::Object o = get_options(arg(info, 3), "options");
  cpu::SgdParams p;
  p.lr = opt_num(o, "lr", p.lr, 0, 1e6);
  p.momentum = opt_num(o, "momentum", 0, 0, 1e6);
  p.dampening = opt_num(o, "dampening", 0, 0, 1);
  p.weight_decay = opt_num(o, "weightDecay", 0, 0, 1e6);
  p.nesterov = opt_bool(o, "nesterov", false);
  p.maximize = opt_bool(o, "maximize", false);
  p.first_step = opt_bool(o, "firstStep", true);
  if (p.momentum != 0 && !has_buf)
    throw_arg(ErrorCode::InvalidArgument, "momentumBuffer", "a tensor when momentum is on", "null");
  if (has_buf) check_like(buf, "momentumBuffer", param);
  check_no_alias(param, "param", grad, "grad");
  cpu::sgd_step(param.f32(), grad.f32(), has_buf ? buf.f32() : nullptr, param.numel(), p);
  return info.Env().Undefined();
}

}  // namespace

void register_optim_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("adamwStep", Napi::Function::New(env, AdamwStep, "adamwStep"));
  exports.Set("sgdStep", Napi::Function::New(env, SgdStep, "sgdStep"));
}

}  // namespace kfac::napi

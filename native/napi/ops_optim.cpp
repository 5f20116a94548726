// Bindings of the optimizer update family (AdamW, SGD): options read here, every check in
// core (native/core/optim_ops.cpp).
#include <napi.h>

#include "../core/optim_ops.h"
#include "args.h"
#include "errors.h"
#include "register.h"

namespace kfac::napi {

namespace {

// adamwStep(param, grad, expAvg, expAvgSq, maxExpAvgSq | null, { lr, beta1, beta2, eps, weightDecay, step, amsgrad, maximize })
KFAC_BINDING(AdamwStep) {
  Tensor param = get_tensor(arg(info, 0), "param"), grad = get_tensor(arg(info, 1), "grad");
  Tensor m = get_tensor(arg(info, 2), "expAvg"), v = get_tensor(arg(info, 3), "expAvgSq"), vmax;
  bool has_max = get_optional_tensor(arg(info, 4), "maxExpAvgSq", vmax);
  Napi::Object o = get_options(arg(info, 5), "options");
  cpu::AdamWParams p;
  p.lr = opt_number(o, "lr", p.lr);
  p.beta1 = opt_number(o, "beta1", p.beta1);
  p.beta2 = opt_number(o, "beta2", p.beta2);
  p.eps = opt_number(o, "eps", p.eps);
  p.weight_decay = opt_number(o, "weightDecay", p.weight_decay);
  p.step = opt_int(o, "step", 1, 1, 9007199254740991LL);
  p.amsgrad = opt_flag(o, "amsgrad", false);
  p.maximize = opt_flag(o, "maximize", false);
  ops::adamw_step(param, grad, m, v, has_max ? &vmax : nullptr, p);
  return info.Env().Undefined();
}

// sgdStep(param, grad, momentumBuffer | null, { lr, momentum, dampening, weightDecay, nesterov, maximize, firstStep })
KFAC_BINDING(SgdStep) {
  Tensor param = get_tensor(arg(info, 0), "param"), grad = get_tensor(arg(info, 1), "grad"), buf;
  bool has_buf = get_optional_tensor(arg(info, 2), "momentumBuffer", buf);
  Napi::Object o = get_options(arg(info, 3), "options");
  cpu::SgdParams p;
  p.lr = opt_number(o, "lr", p.lr);
  p.momentum = opt_number(o, "momentum", 0);
  p.dampening = opt_number(o, "dampening", 0);
  p.weight_decay = opt_number(o, "weightDecay", 0);
  p.nesterov = opt_flag(o, "nesterov", false);
  p.maximize = opt_flag(o, "maximize", false);
  p.first_step = opt_flag(o, "firstStep", true);
  ops::sgd_step(param, grad, has_buf ? &buf : nullptr, p);
  return info.Env().Undefined();
}

const Binding kBindings[] = {
    {"adamwStep", AdamwStep},
    {"sgdStep", SgdStep},
};

}  // namespace

void register_optim_ops(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi

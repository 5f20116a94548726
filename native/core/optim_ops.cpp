#include "optim_ops.h"

#include <cmath>
#include <string>

#include "check.h"
#include "dispatch.h"

namespace kfac::ops {

namespace {

void check_like(const Tensor& t, const char* name, const Tensor& param) {
  check_f32(t, name);
  check_same_shape(param, "param", t, name);
}

void check_range(double v, const char* name, double lo, double hi, bool hi_open = false) {
  if (!std::isfinite(v) || v < lo || v > hi || (hi_open && v >= hi))
    throw_arg(ErrorCode::InvalidArgument, name,
              "a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + (hi_open ? ")" : "]"),
              std::to_string(v));
}

// No two of the update's tensors may share memory (each is read and written elementwise).
void check_separate(std::initializer_list<NamedTensor> ts) {
  for (auto i = ts.begin(); i != ts.end(); ++i)
    for (auto j = i + 1; j != ts.end(); ++j)
      if (i->t && j->t) check_no_alias(*i->t, i->name, *j->t, j->name);
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor* vmax,
                const cpu::AdamWParams& p) {
  const Device dev = common_device({{&param, "param"}, {&grad, "grad"}, {&m, "expAvg"}, {&v, "expAvgSq"},
                                    {vmax, "maxExpAvgSq"}});
  check_like(param, "param", param);
  check_like(grad, "grad", param);
  check_like(m, "expAvg", param);
  check_like(v, "expAvgSq", param);
  check_range(p.lr, "lr", 0, 1e6);
  check_range(p.beta1, "beta1", 0, 1, true);
  check_range(p.beta2, "beta2", 0, 1, true);
  check_range(p.eps, "eps", 0, 1e6);
  check_range(p.weight_decay, "weightDecay", 0, 1e6);
  if (p.step < 1) throw_arg(ErrorCode::InvalidArgument, "step", "an integer >= 1", std::to_string(p.step));
  if (p.amsgrad && !vmax) throw_arg(ErrorCode::InvalidArgument, "maxExpAvgSq", "a tensor when amsgrad is on", "null");
  if (vmax) check_like(*vmax, "maxExpAvgSq", param);
  check_separate({{&param, "param"}, {&grad, "grad"}, {&m, "expAvg"}, {&v, "expAvgSq"}, {vmax, "maxExpAvgSq"}});
  KFAC_DISPATCH(dev, adamw_step)(param, grad, m, v, vmax, p);
}

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor* buf, const cpu::SgdParams& p) {
  const Device dev = common_device({{&param, "param"}, {&grad, "grad"}, {buf, "momentumBuffer"}});
  check_like(param, "param", param);
  check_like(grad, "grad", param);
  check_range(p.lr, "lr", 0, 1e6);
  check_range(p.momentum, "momentum", 0, 1e6);
  check_range(p.dampening, "dampening", 0, 1);
  check_range(p.weight_decay, "weightDecay", 0, 1e6);
  if (p.momentum != 0 && !buf)
    throw_arg(ErrorCode::InvalidArgument, "momentumBuffer", "a tensor when momentum is on", "null");
  if (buf) check_like(*buf, "momentumBuffer", param);
  check_separate({{&param, "param"}, {&grad, "grad"}, {buf, "momentumBuffer"}});
  KFAC_DISPATCH(dev, sgd_step)(param, grad, buf, p);
}

}  // namespace kfac::ops

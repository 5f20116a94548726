// Checked entry points of layernorm_forward/backward and rmsnorm_forward/backward (native/core/nn.h).
#include "nn.h"

#include <initializer_list>
#include <string>
#include <utility>

#include "check.h"
#include "dispatch.h"
#include "nn_args.h"

namespace kfac::nn {

using namespace detail;

namespace {

void check_numel(const Tensor& t, const char* name, int64_t n) {
  if (t.numel() != n)
    throw_arg(ErrorCode::Shape, name, std::to_string(n) + " elements", shape_str(t.shape()));
}

void check_eps(float eps) {
  check_finite_scalar(eps, "eps");
  if (!(eps > 0.f)) throw_arg(ErrorCode::InvalidArgument, "eps", "a positive number", std::to_string(eps));
}

// The fused residual add of a norm's forward: residual and sum like x, both or neither; sum is
// written first and read by the norm, so it aliases no other argument.
void check_residual(const Tensor& x, const Tensor* residual, const Tensor* sum, Device dev, const char* op,
                    std::initializer_list<const Tensor*> others) {
  if (!residual && !sum) return;
  if (!residual) throw_arg(ErrorCode::InvalidArgument, "residual", "a tensor when sum is given", "null");
  if (!sum) throw_arg(ErrorCode::InvalidArgument, "sum", "a tensor when residual is given (x + residual is stored there)", "null");
  act_like(*residual, "residual", x, "x", dev, op);
  act_like(*sum, "sum", x, "x", dev, op);
  check_shape(*residual, "residual", x.shape());
  check_shape(*sum, "sum", x.shape());
  no_alias(&x, "x", sum, "sum");
  no_alias(residual, "residual", sum, "sum");
  for (const Tensor* t : others) no_alias(t, "another argument", sum, "sum");
}

}  // namespace

void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor* b, float eps, const Tensor& out,
                       const Tensor& mean, const Tensor& rstd, const Tensor* residual, const Tensor* sum) {
  const Device dev = nn_device(x, "x", "layernorm_forward");
  act(x, "x", dev, "layernorm_forward");
  in(w, "w", dev);
  in_opt(b, "b", dev);
  act_like(out, "out", x, "x", dev, "layernorm_forward");
  in(mean, "mean", dev);
  in(rstd, "rstd", dev);
  check_rank(x, "x", 1, kMaxRank);
  check_eps(eps);
  const int64_t C = x.dim(-1), N = rows_of(x);
  check_shape(w, "w", {C});
  if (b) check_shape(*b, "b", {C});
  check_shape(out, "out", x.shape());
  check_numel(mean, "mean", N);
  check_numel(rstd, "rstd", N);
  same_or_separate(x, "x", out, "out");
  no_alias(&w, "w", &out, "out");
  no_alias(b, "b", &out, "out");
  for (const Tensor* t : {&x, &w, b, &out}) {
    no_alias(t, "an input", &mean, "mean");
    no_alias(t, "an input", &rstd, "rstd");
  }
  no_alias(&mean, "mean", &rstd, "rstd");
  check_residual(x, residual, sum, dev, "layernorm_forward", {&w, b, &out, &mean, &rstd});
  if (residual) {
    no_alias(residual, "residual", &out, "out");
    for (const Tensor* t : {&mean, &rstd}) no_alias(residual, "residual", t, "mean or rstd");
  }
  KFAC_DISPATCH(dev, layernorm_forward)(x, w, b, eps, out, mean, rstd, residual, sum);
}

void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                        const Tensor& dout, const Tensor* dx, const Tensor* dw, const Tensor* db) {
  const Device dev = nn_device(x, "x", "layernorm_backward");
  act(x, "x", dev, "layernorm_backward");
  in(w, "w", dev);
  in(mean, "mean", dev);
  in(rstd, "rstd", dev);
  act_like(dout, "dout", x, "x", dev, "layernorm_backward");
  act_like_opt(dx, "dx", x, "x", dev, "layernorm_backward");
  in_opt(dw, "dw", dev);
  in_opt(db, "db", dev);
  check_rank(x, "x", 1, kMaxRank);
  const int64_t C = x.dim(-1), N = rows_of(x);
  check_shape(w, "w", {C});
  check_numel(mean, "mean", N);
  check_numel(rstd, "rstd", N);
  check_shape(dout, "dout", x.shape());
  if (dx) check_shape(*dx, "dx", x.shape());
  if (dw) check_shape(*dw, "dw", {C});
  if (db) check_shape(*db, "db", {C});
  if (dx) {
    same_or_separate(dout, "dout", *dx, "dx");
    same_or_separate(x, "x", *dx, "dx");
    no_alias(&w, "w", dx, "dx");
    no_alias(&mean, "mean", dx, "dx");
    no_alias(&rstd, "rstd", dx, "dx");
  }
  for (auto [t, n] : {std::pair{dw, "dw"}, std::pair{db, "db"}})
    for (const Tensor* s : {&x, &w, &mean, &rstd, &dout, dx}) no_alias(s, "another argument", t, n);
  no_alias(dw, "dw", db, "db");
  KFAC_DISPATCH(dev, layernorm_backward)(x, w, mean, rstd, dout, dx, dw, db);
}

void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& out, const Tensor& rstd,
                     const Tensor* residual, const Tensor* sum) {
  const Device dev = nn_device(x, "x", "rmsnorm_forward");
  act(x, "x", dev, "rmsnorm_forward");
  in(w, "w", dev);
  act_like(out, "out", x, "x", dev, "rmsnorm_forward");
  in(rstd, "rstd", dev);
  check_rank(x, "x", 1, kMaxRank);
  check_eps(eps);
  const int64_t C = x.dim(-1), N = rows_of(x);
  check_shape(w, "w", {C});
  check_shape(out, "out", x.shape());
  check_numel(rstd, "rstd", N);
  same_or_separate(x, "x", out, "out");
  no_alias(&w, "w", &out, "out");
  for (const Tensor* t : {&x, &w, &out}) no_alias(t, "an input", &rstd, "rstd");
  check_residual(x, residual, sum, dev, "rmsnorm_forward", {&w, &out, &rstd});
  if (residual) {
    no_alias(residual, "residual", &out, "out");
    no_alias(residual, "residual", &rstd, "rstd");
  }
  KFAC_DISPATCH(dev, rmsnorm_forward)(x, w, eps, out, rstd, residual, sum);
}

void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dout,
                      const Tensor* dx, const Tensor* dw) {
  const Device dev = nn_device(x, "x", "rmsnorm_backward");
  act(x, "x", dev, "rmsnorm_backward");
  in(w, "w", dev);
  in(rstd, "rstd", dev);
  act_like(dout, "dout", x, "x", dev, "rmsnorm_backward");
  act_like_opt(dx, "dx", x, "x", dev, "rmsnorm_backward");
  in_opt(dw, "dw", dev);
  check_rank(x, "x", 1, kMaxRank);
  const int64_t C = x.dim(-1), N = rows_of(x);
  check_shape(w, "w", {C});
  check_numel(rstd, "rstd", N);
  check_shape(dout, "dout", x.shape());
  if (dx) check_shape(*dx, "dx", x.shape());
  if (dw) check_shape(*dw, "dw", {C});
  if (dx) {
    same_or_separate(dout, "dout", *dx, "dx");
    same_or_separate(x, "x", *dx, "dx");
    no_alias(&w, "w", dx, "dx");
    no_alias(&rstd, "rstd", dx, "dx");
  }
  for (const Tensor* s : {&x, &w, &rstd, &dout, dx}) no_alias(s, "another argument", dw, "dw");
  KFAC_DISPATCH(dev, rmsnorm_backward)(x, w, rstd, dout, dx, dw);
}

}  // namespace kfac::nn

// Checked entry points of attention_forward / attention_backward, kv_cache_write and
// rope_forward / rope_backward (native/core/nn.h).
#include "nn.h"

#include <string>
#include <utility>

#include "check.h"
#include "dispatch.h"
#include "nn_args.h"

namespace kfac::nn {

using namespace detail;

namespace {
struct AttentionDims {
  int64_t B, Tq, Tk, H, Hkv, D;
  int64_t Tcap;  // time steps allocated in k/v/mask (≥ Tk)
};

AttentionDims attention_dims(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                                  float scale, int64_t kv_len, const char* op) {
  const Device dev = q.device();
  act(q, "q", dev, op);
  act_like(k, "k", q, "q", dev, op);
  act_like(v, "v", q, "q", dev, op);
  in_opt(mask, "mask", dev);
  check_rank(q, "q", 4, 4);
  check_rank(k, "k", 4, 4);
  check_same_shape(k, "k", v, "v");
  check_finite_scalar(scale, "scale");
  AttentionDims d{q.dim(0), q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3), k.dim(1)};
  if (kv_len >= 0) {
    if (kv_len > k.dim(1))
      throw_arg(ErrorCode::InvalidArgument, "kvLength", "at most the " + std::to_string(k.dim(1)) + " time steps of k",
                std::to_string(kv_len));
    d.Tk = kv_len;
  }
  if (k.dim(0) != d.B || k.dim(3) != d.D)
    throw_arg(ErrorCode::Shape, "k", "[" + std::to_string(d.B) + ", Tk, Hkv, " + std::to_string(d.D) + "] like q " + shape_str(q.shape()),
              shape_str(k.shape()));
  if (d.Hkv < 1 || d.H % d.Hkv != 0)
    throw_arg(ErrorCode::Shape, "k", "a number of key/value heads that divides the " + std::to_string(d.H) + " query heads",
              std::to_string(d.Hkv) + " heads");
  if (mask) check_shape(*mask, "mask", {d.B, d.Tcap});
  return d;
}

// bias [H, Tq, Tk] (and dbias [B, H, Tq, Tk]) on the op's device, apart from every other argument.
void check_attention_bias(const Tensor* bias, const Tensor* dbias, const AttentionDims& d, Device dev) {
  in_opt(bias, "bias", dev);
  in_opt(dbias, "dbias", dev);
  if (bias) check_shape(*bias, "bias", {d.H, d.Tq, d.Tk});
  if (dbias) {
    if (!bias) throw_arg(ErrorCode::InvalidArgument, "dbias", "null when the forward had no bias", "a tensor");
    check_shape(*dbias, "dbias", {d.B, d.H, d.Tq, d.Tk});
  }
}

void check_attention_dropout(float p) {
  check_finite_scalar(p, "dropout");
  if (p < 0.f || p >= 1.f)
    throw_arg(ErrorCode::InvalidArgument, "dropout", "a probability in [0, 1)", std::to_string(p));
}
}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                       const Tensor& out, const Tensor& lse, bool causal, float scale, int64_t kv_len,
                       float dropout, uint64_t seed, const Tensor* bias) {
  const Device dev = nn_device(q, "q", "attention_forward");
  AttentionDims d = attention_dims(q, k, v, mask, scale, kv_len, "attention_forward");
  check_attention_dropout(dropout);
  check_attention_bias(bias, nullptr, d, dev);
  act_like(out, "out", q, "q", dev, "attention_forward");
  in(lse, "lse", dev);
  check_shape(out, "out", q.shape());
  check_shape(lse, "lse", {d.B, d.H, d.Tq});
  for (const Tensor* t : {&q, &k, &v, mask, bias}) {
    no_alias(t, "an input", &out, "out");
    no_alias(t, "an input", &lse, "lse");
  }
  no_alias(&out, "out", &lse, "lse");
  KFAC_DISPATCH(dev, attention_forward)(q, k, v, mask, out, lse, causal, scale, d.Tk, dropout, seed, bias);
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                        const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv, bool causal, float scale, int64_t kv_len, float dropout,
                        uint64_t seed, const Tensor* out, const Tensor* bias, const Tensor* dbias) {
  const Device dev = nn_device(q, "q", "attention_backward");
  AttentionDims d = attention_dims(q, k, v, mask, scale, kv_len, "attention_backward");
  check_attention_dropout(dropout);
  check_attention_bias(bias, dbias, d, dev);
  in(lse, "lse", dev);
  act_like(dout, "dout", q, "q", dev, "attention_backward");
  act_like(dq, "dq", q, "q", dev, "attention_backward");
  act_like(dk, "dk", q, "q", dev, "attention_backward");
  act_like(dv, "dv", q, "q", dev, "attention_backward");
  check_shape(lse, "lse", {d.B, d.H, d.Tq});
  check_shape(dout, "dout", q.shape());
  act_like_opt(out, "out", q, "q", dev, "attention_backward");
  if (out) check_shape(*out, "out", q.shape());
  check_shape(dq, "dq", q.shape());
  check_shape(dk, "dk", k.shape());
  check_shape(dv, "dv", k.shape());
  for (auto [g, gn] : {std::pair{&dq, "dq"}, std::pair{&dk, "dk"}, std::pair{&dv, "dv"}, std::pair{dbias, "dbias"}})
    for (const Tensor* t : {&q, &k, &v, mask, &lse, &dout, out, bias}) no_alias(t, "an input", g, gn);
  for (auto [g, gn] : {std::pair{&dq, "dq"}, std::pair{&dk, "dk"}, std::pair{&dv, "dv"}}) no_alias(dbias, "dbias", g, gn);
  no_alias(&dq, "dq", &dk, "dk");
  no_alias(&dq, "dq", &dv, "dv");
  no_alias(&dk, "dk", &dv, "dv");
  KFAC_DISPATCH(dev, attention_backward)(q, k, v, mask, lse, out, dout, dq, dk, dv, causal, scale, d.Tk, dropout, seed,
                                         bias, dbias);
}

void kv_cache_write(const Tensor& src, const Tensor& cache, int64_t offset) {
  const Device dev = nn_device(src, "src", "kv_cache_write");
  act(src, "src", dev, "kv_cache_write");
  act_like(cache, "cache", src, "src", dev, "kv_cache_write");
  check_rank(src, "src", 4, 4);
  check_rank(cache, "cache", 4, 4);
  if (src.dim(0) != cache.dim(0) || src.dim(2) != cache.dim(2) || src.dim(3) != cache.dim(3))
    throw_arg(ErrorCode::Shape, "cache", "[" + std::to_string(src.dim(0)) + ", Tcap, " + std::to_string(src.dim(2)) + ", " +
                                             std::to_string(src.dim(3)) + "] like src " + shape_str(src.shape()),
              shape_str(cache.shape()));
  if (offset < 0 || offset > cache.dim(1) - src.dim(1))
    throw_arg(ErrorCode::InvalidArgument, "offset",
              "a position in [0, " + std::to_string(cache.dim(1) - src.dim(1)) + "] so that " +
                  std::to_string(src.dim(1)) + " steps fit in the cache of " + std::to_string(cache.dim(1)),
              std::to_string(offset));
  no_alias(&src, "src", &cache, "cache");
  KFAC_DISPATCH(dev, kv_cache_write)(src, cache, offset);
}

namespace {
int rope_check(const Tensor& x, const char* xn, const Tensor& o, const char* on, int64_t offset,
                         double base, int kind, const char* op) {
  const Device dev = x.device();
  act(x, xn, dev, op);
  act_like(o, on, x, xn, dev, op);
  check_rank(x, xn, 4, 4);
  check_same_shape(x, xn, o, on);
  same_or_separate(x, xn, o, on);
  if (x.dim(3) % 2 != 0)
    throw_arg(ErrorCode::Shape, xn, "an even head dimension D in [B, T, H, D]", shape_str(x.shape()));
  if (offset < 0) throw_arg(ErrorCode::InvalidArgument, "offset", "a non-negative position", std::to_string(offset));
  check_finite_scalar(base, "base");
  if (!(base > 1.0)) throw_arg(ErrorCode::InvalidArgument, "base", "a number above 1", std::to_string(base));
  if (kind != 0 && kind != 1)
    throw_arg(ErrorCode::InvalidArgument, "convention", "'half' or 'interleaved'", std::to_string(kind));
  return kind;
}
}  // namespace

void rope_forward(const Tensor& x, const Tensor& out, int64_t offset, double base, int kind) {
  const Device dev = nn_device(x, "x", "rope_forward");
  const int k = rope_check(x, "x", out, "out", offset, base, kind, "rope_forward");
  KFAC_DISPATCH(dev, rope_forward)(x, out, offset, base, k);
}

void rope_backward(const Tensor& dout, const Tensor& dx, int64_t offset, double base, int kind) {
  const Device dev = nn_device(dout, "dout", "rope_backward");
  const int k = rope_check(dout, "dout", dx, "dx", offset, base, kind, "rope_backward");
  KFAC_DISPATCH(dev, rope_backward)(dout, dx, offset, base, k);
}

}  // namespace kfac::nn

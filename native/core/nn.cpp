#include "nn.h"

#include <cmath>
#include <string>

#include "check.h"
#include "dispatch.h"

namespace kfac::nn {

namespace {

// A float32 argument on the op's device (`dev`, set by its first tensor): a tensor on another
// device is a DeviceError naming it.
void in(const Tensor& t, const char* name, Device dev) {
  check_defined(t, name);
  check_f32(t, name);
  if (t.device() != dev)
    throw_arg(ErrorCode::Device, name, std::string("a tensor on ") + device_name(dev) + " like the op's other arguments",
              device_name(t.device()));
}

void in_opt(const Tensor* t, const char* name, Device dev) {
  if (t) in(*t, name, dev);
}

// Whether `dev`'s kernels take bfloat16 activations (the cuda kernels and their emulation do;
// the CPU kernels, and the CPU loopback that poses as cuda, read float32 only).
bool stores_bf16(Device dev) { return backend_registered(dev) && kernels_of(dev).bf16_activations; }

// An activation of op `op`: float32, or bfloat16 on a device whose kernels store activations so
// (elsewhere a DTypeError naming the op and the argument).
void act(const Tensor& t, const char* name, Device dev, const char* op) {
  check_defined(t, name);
  if (t.dtype() != DType::BF16 || t.device() != dev) return in(t, name, dev);
  if (!stores_bf16(dev))
    throw_arg(ErrorCode::DType, name,
              std::string("float32 (") + op + " takes bfloat16 activations only on a device whose kernels store them: cuda, not " +
                  device_name(dev) + ")",
              "bfloat16");
}
// An activation that must share the storage dtype of `ref` (one storage type per call).
void act_like(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name, Device dev, const char* op) {
  act(t, name, dev, op);
  if (t.dtype() != ref.dtype())
    throw_arg(ErrorCode::DType, name, std::string(dtype_name(ref.dtype())) + " like " + ref_name, dtype_name(t.dtype()));
}
void act_like_opt(const Tensor* t, const char* name, const Tensor& ref, const char* ref_name, Device dev, const char* op) {
  if (t) act_like(*t, name, ref, ref_name, dev, op);
}

// A Linear weight may be bfloat16 (a frozen base weight, [OUT, IN] layout only).
bool weight_in(const Tensor& W, bool conv1d, Device dev) {
  if (W.defined() && W.dtype() == DType::BF16 && !conv1d && W.device() == dev) return true;
  in(W, "W", dev);
  return false;
}

// The device of an nn op (that of `first`). Whether it has the op's kernel is asked when the
// op dispatches, after the checks.
Device nn_device(const Tensor& first, const char* first_name, const char* op) {
  check_defined(first, first_name);
  return first.device();
}

// Rows of a [..., C] tensor: the product of its leading dimensions.
int64_t rows_of(const Tensor& t) {
  int64_t n = 1;
  for (int i = 0; i + 1 < t.rank(); ++i) n *= t.dim(i);
  return n;
}

Shape with_last(const Shape& s, int64_t last) {
  Shape r = s;
  r.back() = last;
  return r;
}

void no_alias(const Tensor* a, const char* an, const Tensor* b, const char* bn) {
  if (a && b && a->numel() > 0 && b->numel() > 0) check_no_alias(*a, an, *b, bn);
}

// Either the very same memory (an in-place call) or no overlap at all.
void same_or_separate(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  if (a.raw() == b.raw() && a.nbytes() == b.nbytes()) return;
  no_alias(&a, an, &b, bn);
}

void check_numel(const Tensor& t, const char* name, int64_t n) {
  if (t.numel() != n)
    throw_arg(ErrorCode::Shape, name, std::to_string(n) + " elements", shape_str(t.shape()));
}

void check_ids(const int32_t* ids, int64_t n, int64_t V, const char* name, bool allow_ignore,
               int32_t ignore) {
  for (int64_t i = 0; i < n; ++i) {
    int32_t t = ids[i];
    if (allow_ignore && t == ignore) continue;
    if (t < 0 || int64_t(t) >= V)
      throw_arg(ErrorCode::InvalidArgument, name,
                "integers in [0, " + std::to_string(V) + ")" +
                    (allow_ignore ? " or the ignore index " + std::to_string(ignore) : std::string()),
                std::to_string(t) + " at position " + std::to_string(i));
  }
}

void check_eps(float eps) {
  check_finite_scalar(eps, "eps");
  if (!(eps > 0.f)) throw_arg(ErrorCode::InvalidArgument, "eps", "a positive number", std::to_string(eps));
}

}  // namespace

// ---------------------------------------------------------------- linear

void linear_forward(const Tensor& x, const Tensor& W, const Tensor* b, const Tensor& y, bool conv1d) {
  const Device dev = nn_device(x, "x", "linear_forward");
  act(x, "x", dev, "linear_forward");
  const bool bf16 = weight_in(W, conv1d, dev);
  in_opt(b, "b", dev);
  act(y, "y", dev, "linear_forward");
  check_rank(x, "x", 1, kMaxRank);
  check_rank(W, "W", 2, 2);
  const int64_t IN = x.dim(-1);
  const int64_t OUT = conv1d ? W.dim(1) : W.dim(0);
  if ((conv1d ? W.dim(0) : W.dim(1)) != IN)
    throw_arg(ErrorCode::Shape, "W",
              conv1d ? "shape [" + std::to_string(IN) + ", out] (Conv1D layout) for x " + shape_str(x.shape())
                     : "shape [out, " + std::to_string(IN) + "] for x " + shape_str(x.shape()),
              shape_str(W.shape()));
  if (b) check_shape(*b, "b", {OUT});
  check_shape(y, "y", with_last(x.shape(), OUT));
  no_alias(&x, "x", &y, "y");
  no_alias(&W, "W", &y, "y");
  no_alias(b, "b", &y, "y");
  (void)bf16;
  KFAC_DISPATCH(dev, linear_forward)(x, W, b, y, conv1d);
}

void linear_backward(const Tensor& x, const Tensor& W, const Tensor& dy, const Tensor* dx, const Tensor* dW,
                     const Tensor* db, bool conv1d, bool accumulate_dx) {
  const Device dev = nn_device(x, "x", "linear_backward");
  act(x, "x", dev, "linear_backward");
  const bool bf16 = weight_in(W, conv1d, dev);
  act(dy, "dy", dev, "linear_backward");
  if (dx) act(*dx, "dx", dev, "linear_backward");
  in_opt(dW, "dW", dev);
  in_opt(db, "db", dev);
  check_rank(x, "x", 1, kMaxRank);
  check_rank(W, "W", 2, 2);
  const int64_t IN = x.dim(-1);
  const int64_t OUT = conv1d ? W.dim(1) : W.dim(0);
  if ((conv1d ? W.dim(0) : W.dim(1)) != IN)
    throw_arg(ErrorCode::Shape, "W", "a weight matching x " + shape_str(x.shape()), shape_str(W.shape()));
  check_shape(dy, "dy", with_last(x.shape(), OUT));
  if (dx) check_shape(*dx, "dx", x.shape());
  if (dW) check_shape(*dW, "dW", W.shape());
  if (db) check_shape(*db, "db", {OUT});
  for (auto [t, n] : {std::pair{dx, "dx"}, std::pair{dW, "dW"}, std::pair{db, "db"}}) {
    no_alias(&x, "x", t, n);
    no_alias(&W, "W", t, n);
    no_alias(&dy, "dy", t, n);
  }
  no_alias(dx, "dx", dW, "dW");
  no_alias(dx, "dx", db, "db");
  no_alias(dW, "dW", db, "db");
  if (bf16 && dW) throw_arg(ErrorCode::DType, "dW", "no weight gradient for a bfloat16 (frozen) weight", "a gradient tensor");
  KFAC_DISPATCH(dev, linear_backward)(x, W, dy, dx, dW, db, conv1d, accumulate_dx);
}

// ---------------------------------------------------------------- embedding

void embedding_forward(const int32_t* ids, int64_t n, const Tensor& W, const Tensor& out) {
  const Device dev = nn_device(W, "W", "embedding_forward");
  in(W, "W", dev);
  act(out, "out", dev, "embedding_forward");
  check_rank(W, "W", 2, 2);
  check_rank(out, "out", 1, kMaxRank);
  const int64_t V = W.dim(0), C = W.dim(1);
  if (out.dim(-1) != C || rows_of(out) != n)
    throw_arg(ErrorCode::Shape, "out", "[..., " + std::to_string(C) + "] with " + std::to_string(n) + " rows",
              shape_str(out.shape()));
  check_ids(ids, n, V, "ids", false, 0);
  no_alias(&W, "W", &out, "out");
  KFAC_DISPATCH(dev, embedding_forward)(ids, n, W, out);
}

void embedding_backward(const int32_t* ids, int64_t n, const Tensor& dout, const Tensor& dW) {
  const Device dev = nn_device(dout, "dout", "embedding_backward");
  act(dout, "dout", dev, "embedding_backward");
  in(dW, "dW", dev);
  check_rank(dW, "dW", 2, 2);
  check_rank(dout, "dout", 1, kMaxRank);
  const int64_t V = dW.dim(0), C = dW.dim(1);
  if (dout.dim(-1) != C || rows_of(dout) != n)
    throw_arg(ErrorCode::Shape, "dout", "[..., " + std::to_string(C) + "] with " + std::to_string(n) + " rows",
              shape_str(dout.shape()));
  check_ids(ids, n, V, "ids", false, 0);
  no_alias(&dout, "dout", &dW, "dW");
  KFAC_DISPATCH(dev, embedding_backward)(ids, n, dout, dW);
}

// ---------------------------------------------------------------- norms

void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor* b, float eps, const Tensor& out,
                       const Tensor& mean, const Tensor& rstd) {
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
  KFAC_DISPATCH(dev, layernorm_forward)(x, w, b, eps, out, mean, rstd);
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

void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& out, const Tensor& rstd) {
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
  KFAC_DISPATCH(dev, rmsnorm_forward)(x, w, eps, out, rstd);
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

// ---------------------------------------------------------------- activations

namespace {
void pointwise(const Tensor& x, const char* xn, const Tensor& o, const char* on, const char* op) {
  const Device dev = x.device();
  act(x, xn, dev, op);
  act_like(o, on, x, xn, dev, op);
  check_same_shape(x, xn, o, on);
  same_or_separate(x, xn, o, on);
}
void pointwise3(const Tensor& x, const char* xn, const Tensor& g, const char* gn, const Tensor& o,
                const char* on, const char* op) {
  pointwise(x, xn, o, on, op);
  act_like(g, gn, x, xn, x.device(), op);
  check_same_shape(x, xn, g, gn);
  same_or_separate(g, gn, o, on);
}
int gelu_kind(int kind) {
  if (kind != 0 && kind != 1) throw_arg(ErrorCode::InvalidArgument, "kind", "'erf' or 'tanh'", std::to_string(kind));
  return kind;
}
}  // namespace

void gelu_forward(const Tensor& x, const Tensor& out, int kind) {
  const Device dev = nn_device(x, "x", "gelu_forward");
  const int k = gelu_kind(kind);
  pointwise(x, "x", out, "out", "gelu_forward");
  KFAC_DISPATCH(dev, gelu_forward)(x, out, k);
}

void gelu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx, int kind) {
  const Device dev = nn_device(x, "x", "gelu_backward");
  const int k = gelu_kind(kind);
  pointwise3(x, "x", dout, "dout", dx, "dx", "gelu_backward");
  KFAC_DISPATCH(dev, gelu_backward)(x, dout, dx, k);
}

void silu_forward(const Tensor& x, const Tensor& out) {
  const Device dev = nn_device(x, "x", "silu_forward");
  pointwise(x, "x", out, "out", "silu_forward");
  KFAC_DISPATCH(dev, silu_forward)(x, out);
}

void silu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx) {
  const Device dev = nn_device(x, "x", "silu_backward");
  pointwise3(x, "x", dout, "dout", dx, "dx", "silu_backward");
  KFAC_DISPATCH(dev, silu_backward)(x, dout, dx);
}

void swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  const Device dev = nn_device(gate, "gate", "swiglu_forward");
  pointwise3(gate, "gate", up, "up", out, "out", "swiglu_forward");
  KFAC_DISPATCH(dev, swiglu_forward)(gate, up, out);
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                     const Tensor& dup) {
  const Device dev = nn_device(gate, "gate", "swiglu_backward");
  pointwise3(gate, "gate", up, "up", dgate, "dgate", "swiglu_backward");
  pointwise3(gate, "gate", dout, "dout", dup, "dup", "swiglu_backward");
  same_or_separate(up, "up", dup, "dup");
  same_or_separate(dout, "dout", dgate, "dgate");
  no_alias(&dgate, "dgate", &dup, "dup");
  KFAC_DISPATCH(dev, swiglu_backward)(gate, up, dout, dgate, dup);
}

void relu_forward(const Tensor& x, const Tensor& out) {
  const Device dev = nn_device(x, "x", "relu_forward");
  pointwise(x, "x", out, "out", "relu_forward");
  KFAC_DISPATCH(dev, relu_forward)(x, out);
}

void relu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx) {
  const Device dev = nn_device(x, "x", "relu_backward");
  pointwise3(x, "x", dout, "dout", dx, "dx", "relu_backward");
  KFAC_DISPATCH(dev, relu_backward)(x, dout, dx);
}

namespace {
int gate_act(int act) {
  if (act < 0 || act > 3)
    throw_arg(ErrorCode::InvalidArgument, "act", "'gelu', 'gelu_tanh', 'relu' or 'silu'", std::to_string(act));
  return act;
}
}  // namespace

void gated_forward(const Tensor& gate, const Tensor& up, const Tensor& out, int act) {
  const Device dev = nn_device(gate, "gate", "gated_forward");
  const int a = gate_act(act);
  pointwise3(gate, "gate", up, "up", out, "out", "gated_forward");
  KFAC_DISPATCH(dev, gated_forward)(gate, up, out, a);
}

void gated_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                    const Tensor& dup, int act) {
  const Device dev = nn_device(gate, "gate", "gated_backward");
  const int a = gate_act(act);
  pointwise3(gate, "gate", up, "up", dgate, "dgate", "gated_backward");
  pointwise3(gate, "gate", dout, "dout", dup, "dup", "gated_backward");
  same_or_separate(up, "up", dup, "dup");
  same_or_separate(dout, "dout", dgate, "dgate");
  no_alias(&dgate, "dgate", &dup, "dup");
  KFAC_DISPATCH(dev, gated_backward)(gate, up, dout, dgate, dup, a);
}

// ---------------------------------------------------------------- cross-entropy

CrossEntropyResult cross_entropy(const Tensor& logits, const int32_t* targets, int64_t n,
                                 const Tensor* dlogits, int32_t ignore_index, float dscale) {
  const Device dev = nn_device(logits, "logits", "cross_entropy");
  act(logits, "logits", dev, "cross_entropy");
  act_like_opt(dlogits, "dlogits", logits, "logits", dev, "cross_entropy");
  check_rank(logits, "logits", 1, kMaxRank);
  check_finite_scalar(dscale, "dscale");
  const int64_t V = logits.dim(-1), N = rows_of(logits);
  if (V < 1) throw_arg(ErrorCode::Shape, "logits", "at least one class", shape_str(logits.shape()));
  if (n != N)
    throw_arg(ErrorCode::Shape, "targets", std::to_string(N) + " targets (one per row of logits)",
              std::to_string(n));
  if (dlogits) {
    check_shape(*dlogits, "dlogits", logits.shape());
    same_or_separate(logits, "logits", *dlogits, "dlogits");
  }
  check_ids(targets, n, V, "targets", true, ignore_index);
  CrossEntropyResult r = KFAC_DISPATCH(dev, cross_entropy)(logits, targets, n, dlogits, ignore_index, dscale);
  if (!std::isfinite(r.loss))
    throw_arg(ErrorCode::NotFinite, "logits", "finite values", "a row whose loss is NaN or Inf");
  return r;
}

// ---------------------------------------------------------------- attention

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

// ---------------------------------------------------------------- RoPE

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

// ---------------------------------------------------------------- dropout

namespace {
void dropout_check(const Tensor& x, const char* xn, const Tensor& o, const char* on, float p, const char* op) {
  pointwise(x, xn, o, on, op);
  check_finite_scalar(p, "p");
  if (p < 0.f || p > 1.f) throw_arg(ErrorCode::InvalidArgument, "p", "a probability in [0, 1]", std::to_string(p));
}
}  // namespace

void dropout_forward(const Tensor& x, const Tensor& out, float p, uint64_t seed) {
  const Device dev = nn_device(x, "x", "dropout_forward");
  dropout_check(x, "x", out, "out", p, "dropout_forward");
  KFAC_DISPATCH(dev, dropout_forward)(x, out, p, seed);
}

void dropout_backward(const Tensor& dout, const Tensor& dx, float p, uint64_t seed) {
  const Device dev = nn_device(dout, "dout", "dropout_backward");
  dropout_check(dout, "dout", dx, "dx", p, "dropout_backward");
  KFAC_DISPATCH(dev, dropout_backward)(dout, dx, p, seed);
}

}  // namespace kfac::nn

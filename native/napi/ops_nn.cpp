// Bindings of the neural-network op family (native/core/nn.h). Argument order follows the
// core functions; optional tensors may be null or undefined; integer ids come as Int32Array.
#include <napi.h>

#include <cmath>
#include <string>

#include "../core/nn.h"
#include "args.h"
#include "errors.h"
#include "register.h"
#include "tensor_wrap.h"

namespace kfac::napi {

namespace {

struct Ids {
  const int32_t* data;
  int64_t n;
};

Ids get_ids(Napi::Value v, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_arg(ErrorCode::InvalidArgument, name, "an Int32Array", describe(v));
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return {a.Data(), int64_t(a.ElementLength())};
}

// Optional tensor argument: returns a pointer into `slot` or nullptr.
const Tensor* opt(Napi::Value v, const char* name, Tensor& slot) {
  return get_optional_tensor(v, name, slot) ? &slot : nullptr;
}

int gelu_kind(Napi::Value v) {
  std::string s = get_string(v, "approximate");
  if (s == "erf" || s == "none") return 0;
  if (s == "tanh") return 1;
  throw_arg(ErrorCode::InvalidArgument, "approximate", "'erf' or 'tanh'", "'" + s.substr(0, 40) + "'");
}

struct RopeArgs {
  int64_t offset = 0;
  double base = 10000.0;
  int kind = 0;
};

RopeArgs rope_args(Napi::Value v) {
  Napi::Object o = get_options(v, "options");
  RopeArgs r;
  Napi::Value f;
  if (!(f = field(o, "offset")).IsUndefined()) r.offset = get_int(f, "offset", 0, int64_t(1) << 40);
  if (!(f = field(o, "base")).IsUndefined()) r.base = get_finite(f, "base");
  if (!(f = field(o, "convention")).IsUndefined()) {
    std::string s = get_string(f, "convention");
    if (s == "half") r.kind = 0;
    else if (s == "interleaved") r.kind = 1;
    else throw_arg(ErrorCode::InvalidArgument, "convention", "'half' or 'interleaved'", "'" + s.substr(0, 40) + "'");
  }
  return r;
}

struct AttnArgs {
  bool causal = false;
  float scale = 0.f;
  bool has_scale = false;
  int64_t kv_len = -1;
  float dropout = 0.f;
  uint64_t seed = 0;
};

AttnArgs attn_args(Napi::Value v) {
  Napi::Object o = get_options(v, "options");
  AttnArgs a;
  a.causal = opt_flag(o, "causal", false);
  Napi::Value f = field(o, "scale");
  if (!f.IsUndefined()) {
    a.scale = get_float(f, "scale");
    a.has_scale = true;
  }
  Napi::Value kl = field(o, "kvLength");
  if (!kl.IsUndefined()) a.kv_len = get_int(kl, "kvLength", 0, int64_t(1) << 40);
  Napi::Value dp = field(o, "dropout");
  if (!dp.IsUndefined()) a.dropout = get_float(dp, "dropout");
  Napi::Value sd = field(o, "seed");
  if (!sd.IsUndefined()) a.seed = uint64_t(get_int(sd, "seed", 0, (int64_t(1) << 53) - 1));
  return a;
}

float default_scale(const AttnArgs& a, const Tensor& q) {
  if (a.has_scale) return a.scale;
  int64_t D = q.rank() == 4 ? q.dim(3) : 1;
  return D > 0 ? float(1.0 / std::sqrt(double(D))) : 1.f;
}

// linearForward(x, W, b | null, y, { conv1d })
KFAC_BINDING(LinearForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), W = get_tensor(arg(info, 1), "W"), bs;
  const Tensor* b = opt(arg(info, 2), "b", bs);
  Tensor y = get_tensor(arg(info, 3), "y");
  Napi::Object o = get_options(arg(info, 4), "options");
  nn::linear_forward(x, W, b, y, opt_flag(o, "conv1d", false));
  return info.Env().Undefined();
}

// linearBackward(x, W, dy, dx | null, dW | null, db | null, { conv1d, accumulateDx })
KFAC_BINDING(LinearBackward) {
  Tensor x = get_tensor(arg(info, 0), "x"), W = get_tensor(arg(info, 1), "W"), dy = get_tensor(arg(info, 2), "dy");
  Tensor s0, s1, s2;
  const Tensor* dx = opt(arg(info, 3), "dx", s0);
  const Tensor* dW = opt(arg(info, 4), "dW", s1);
  const Tensor* db = opt(arg(info, 5), "db", s2);
  Napi::Object o = get_options(arg(info, 6), "options");
  nn::linear_backward(x, W, dy, dx, dW, db, opt_flag(o, "conv1d", false), opt_flag(o, "accumulateDx", false));
  return info.Env().Undefined();
}

// embeddingForward(ids: Int32Array, W, out)
KFAC_BINDING(EmbeddingForward) {
  Ids ids = get_ids(arg(info, 0), "ids");
  Tensor W = get_tensor(arg(info, 1), "W"), out = get_tensor(arg(info, 2), "out");
  nn::embedding_forward(ids.data, ids.n, W, out);
  return info.Env().Undefined();
}

// embeddingBackward(ids: Int32Array, dout, dW)
KFAC_BINDING(EmbeddingBackward) {
  Ids ids = get_ids(arg(info, 0), "ids");
  Tensor dout = get_tensor(arg(info, 1), "dout"), dW = get_tensor(arg(info, 2), "dW");
  nn::embedding_backward(ids.data, ids.n, dout, dW);
  return info.Env().Undefined();
}

// layerNormForward(x, w, b | null, eps, out, mean, rstd, residual?, sum?)
KFAC_BINDING(LayerNormForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), w = get_tensor(arg(info, 1), "w"), bs, rs, ss;
  const Tensor* b = opt(arg(info, 2), "b", bs);
  float eps = get_float(arg(info, 3), "eps");
  Tensor out = get_tensor(arg(info, 4), "out"), mean = get_tensor(arg(info, 5), "mean"),
         rstd = get_tensor(arg(info, 6), "rstd");
  nn::layernorm_forward(x, w, b, eps, out, mean, rstd, opt(arg(info, 7), "residual", rs), opt(arg(info, 8), "sum", ss));
  return info.Env().Undefined();
}

// layerNormBackward(x, w, mean, rstd, dout, dx | null, dw | null, db | null)
KFAC_BINDING(LayerNormBackward) {
  Tensor x = get_tensor(arg(info, 0), "x"), w = get_tensor(arg(info, 1), "w"),
         mean = get_tensor(arg(info, 2), "mean"), rstd = get_tensor(arg(info, 3), "rstd"),
         dout = get_tensor(arg(info, 4), "dout");
  Tensor s0, s1, s2;
  const Tensor* dx = opt(arg(info, 5), "dx", s0);
  const Tensor* dw = opt(arg(info, 6), "dw", s1);
  const Tensor* db = opt(arg(info, 7), "db", s2);
  nn::layernorm_backward(x, w, mean, rstd, dout, dx, dw, db);
  return info.Env().Undefined();
}

// rmsNormForward(x, w, eps, out, rstd, residual?, sum?)
KFAC_BINDING(RmsNormForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), w = get_tensor(arg(info, 1), "w"), rs, ss;
  float eps = get_float(arg(info, 2), "eps");
  Tensor out = get_tensor(arg(info, 3), "out"), rstd = get_tensor(arg(info, 4), "rstd");
  nn::rmsnorm_forward(x, w, eps, out, rstd, opt(arg(info, 5), "residual", rs), opt(arg(info, 6), "sum", ss));
  return info.Env().Undefined();
}

// rmsNormBackward(x, w, rstd, dout, dx | null, dw | null)
KFAC_BINDING(RmsNormBackward) {
  Tensor x = get_tensor(arg(info, 0), "x"), w = get_tensor(arg(info, 1), "w"),
         rstd = get_tensor(arg(info, 2), "rstd"), dout = get_tensor(arg(info, 3), "dout");
  Tensor s0, s1;
  const Tensor* dx = opt(arg(info, 4), "dx", s0);
  const Tensor* dw = opt(arg(info, 5), "dw", s1);
  nn::rmsnorm_backward(x, w, rstd, dout, dx, dw);
  return info.Env().Undefined();
}

// geluForward(x, out, 'erf' | 'tanh')
KFAC_BINDING(GeluForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), out = get_tensor(arg(info, 1), "out");
  nn::gelu_forward(x, out, gelu_kind(arg(info, 2)));
  return info.Env().Undefined();
}

// geluBackward(x, dout, dx, 'erf' | 'tanh')
KFAC_BINDING(GeluBackward) {
  Tensor x = get_tensor(arg(info, 0), "x"), dout = get_tensor(arg(info, 1), "dout"),
         dx = get_tensor(arg(info, 2), "dx");
  nn::gelu_backward(x, dout, dx, gelu_kind(arg(info, 3)));
  return info.Env().Undefined();
}

KFAC_BINDING(SiluForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), out = get_tensor(arg(info, 1), "out");
  nn::silu_forward(x, out);
  return info.Env().Undefined();
}

KFAC_BINDING(SiluBackward) {
  Tensor x = get_tensor(arg(info, 0), "x"), dout = get_tensor(arg(info, 1), "dout"),
         dx = get_tensor(arg(info, 2), "dx");
  nn::silu_backward(x, dout, dx);
  return info.Env().Undefined();
}

// actOutForward(x, out, 'tanh' | 'relu'), actOutBackward(y, dout, dx, 'tanh' | 'relu')
int outact_kind(Napi::Value v) { return get_choice(v, "kind", {"tanh", "relu"}, 0); }

KFAC_BINDING(ActOutForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), out = get_tensor(arg(info, 1), "out");
  nn::act_out_forward(x, out, outact_kind(arg(info, 2)));
  return info.Env().Undefined();
}

KFAC_BINDING(ActOutBackward) {
  Tensor y = get_tensor(arg(info, 0), "y"), dout = get_tensor(arg(info, 1), "dout"),
         dx = get_tensor(arg(info, 2), "dx");
  nn::act_out_backward(y, dout, dx, outact_kind(arg(info, 3)));
  return info.Env().Undefined();
}

// colScale(x, l, shift, out, accumulate), colScaleBackward(a, b, u, dl | null)
KFAC_BINDING(ColScale) {
  Tensor x = get_tensor(arg(info, 0), "x"), l = get_tensor(arg(info, 1), "l"), out = get_tensor(arg(info, 3), "out");
  nn::col_scale(x, l, float(get_number(arg(info, 2), "shift")), out, get_bool(arg(info, 4), "accumulate"));
  return info.Env().Undefined();
}

KFAC_BINDING(ColScaleBackward) {
  Tensor a = get_tensor(arg(info, 0), "a"), b = get_tensor(arg(info, 1), "b"), u = get_tensor(arg(info, 2), "u");
  Tensor dl;
  const bool has_dl = get_optional_tensor(arg(info, 3), "dl", dl);
  nn::col_scale_backward(a, b, u, has_dl ? &dl : nullptr);
  return info.Env().Undefined();
}

// swigluForward(gate, up, out)
KFAC_BINDING(SwigluForward) {
  Tensor gate = get_tensor(arg(info, 0), "gate"), up = get_tensor(arg(info, 1), "up"),
         out = get_tensor(arg(info, 2), "out");
  nn::swiglu_forward(gate, up, out);
  return info.Env().Undefined();
}

// swigluBackward(gate, up, dout, dgate, dup)
KFAC_BINDING(SwigluBackward) {
  Tensor gate = get_tensor(arg(info, 0), "gate"), up = get_tensor(arg(info, 1), "up"),
         dout = get_tensor(arg(info, 2), "dout"), dgate = get_tensor(arg(info, 3), "dgate"),
         dup = get_tensor(arg(info, 4), "dup");
  nn::swiglu_backward(gate, up, dout, dgate, dup);
  return info.Env().Undefined();
}

KFAC_BINDING(ReluForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), out = get_tensor(arg(info, 1), "out");
  nn::relu_forward(x, out);
  return info.Env().Undefined();
}

KFAC_BINDING(ReluBackward) {
  Tensor x = get_tensor(arg(info, 0), "x"), dout = get_tensor(arg(info, 1), "dout"),
         dx = get_tensor(arg(info, 2), "dx");
  nn::relu_backward(x, dout, dx);
  return info.Env().Undefined();
}

int gate_act(Napi::Value v) {
  std::string s = get_string(v, "act");
  if (s == "gelu") return 0;
  if (s == "gelu_tanh") return 1;
  if (s == "relu") return 2;
  if (s == "silu") return 3;
  throw_arg(ErrorCode::InvalidArgument, "act", "'gelu', 'gelu_tanh', 'relu' or 'silu'", "'" + s.substr(0, 40) + "'");
}

// gatedForward(gate, up, out, act)
KFAC_BINDING(GatedForward) {
  Tensor gate = get_tensor(arg(info, 0), "gate"), up = get_tensor(arg(info, 1), "up"),
         out = get_tensor(arg(info, 2), "out");
  nn::gated_forward(gate, up, out, gate_act(arg(info, 3)));
  return info.Env().Undefined();
}

// gatedBackward(gate, up, dout, dgate, dup, act)
KFAC_BINDING(GatedBackward) {
  Tensor gate = get_tensor(arg(info, 0), "gate"), up = get_tensor(arg(info, 1), "up"),
         dout = get_tensor(arg(info, 2), "dout"), dgate = get_tensor(arg(info, 3), "dgate"),
         dup = get_tensor(arg(info, 4), "dup");
  nn::gated_backward(gate, up, dout, dgate, dup, gate_act(arg(info, 5)));
  return info.Env().Undefined();
}

// crossEntropy(logits, targets: Int32Array, dlogits | null, { ignoreIndex, dscale }, lossTo? | null) →
// { loss, count } (with lossTo the loss is written there on the device and loss is NaN off the CPU)
KFAC_BINDING(CrossEntropy) {
  Tensor logits = get_tensor(arg(info, 0), "logits");
  Ids t = get_ids(arg(info, 1), "targets");
  Tensor s0;
  const Tensor* dlogits = opt(arg(info, 2), "dlogits", s0);
  Napi::Object o = get_options(arg(info, 3), "options");
  int32_t ignore = -100;
  float dscale = 1.f;
  Napi::Value f;
  if (!(f = field(o, "ignoreIndex")).IsUndefined())
    ignore = int32_t(get_int(f, "ignoreIndex", INT32_MIN, INT32_MAX));
  if (!(f = field(o, "dscale")).IsUndefined()) dscale = get_float(f, "dscale");
  Tensor s1;
  const Tensor* loss_to = info.Length() > 4 ? opt(info[4], "lossTo", s1) : nullptr;
  nn::CrossEntropyResult r = nn::cross_entropy(logits, t.data, t.n, dlogits, ignore, dscale, loss_to);
  Napi::Object res = Napi::Object::New(info.Env());
  res.Set("loss", Napi::Number::New(info.Env(), r.loss));
  res.Set("count", Napi::Number::New(info.Env(), double(r.count)));
  return res;
}

// attentionForward(q, k, v, mask | null, out, lse, { causal, scale }, bias? | null)
KFAC_BINDING(AttentionForward) {
  Tensor q = get_tensor(arg(info, 0), "q"), k = get_tensor(arg(info, 1), "k"), v = get_tensor(arg(info, 2), "v");
  Tensor ms;
  const Tensor* mask = opt(arg(info, 3), "mask", ms);
  Tensor out = get_tensor(arg(info, 4), "out"), lse = get_tensor(arg(info, 5), "lse");
  AttnArgs a = attn_args(arg(info, 6));
  Tensor bs;
  const Tensor* bias = opt(arg(info, 7), "bias", bs);
  nn::attention_forward(q, k, v, mask, out, lse, a.causal, default_scale(a, q), a.kv_len, a.dropout, a.seed, bias);
  return info.Env().Undefined();
}

// attentionBackward(q, k, v, mask | null, lse, dout, dq, dk, dv, { causal, scale }, out | null, bias? | null,
//                   dbias? | null)
KFAC_BINDING(AttentionBackward) {
  Tensor q = get_tensor(arg(info, 0), "q"), k = get_tensor(arg(info, 1), "k"), v = get_tensor(arg(info, 2), "v");
  Tensor ms;
  const Tensor* mask = opt(arg(info, 3), "mask", ms);
  Tensor lse = get_tensor(arg(info, 4), "lse"), dout = get_tensor(arg(info, 5), "dout"),
         dq = get_tensor(arg(info, 6), "dq"), dk = get_tensor(arg(info, 7), "dk"), dv = get_tensor(arg(info, 8), "dv");
  AttnArgs a = attn_args(arg(info, 9));
  Tensor os, bs, dbs;
  const Tensor* out = opt(arg(info, 10), "out", os);
  const Tensor* bias = opt(arg(info, 11), "bias", bs);
  const Tensor* dbias = opt(arg(info, 12), "dbias", dbs);
  nn::attention_backward(q, k, v, mask, lse, dout, dq, dk, dv, a.causal, default_scale(a, q), a.kv_len, a.dropout,
                         a.seed, out, bias, dbias);
  return info.Env().Undefined();
}

// timeSlice(src, dst, offset): dst = src's time steps offset … offset + T − 1
KFAC_BINDING(TimeSlice) {
  Tensor src = get_tensor(arg(info, 0), "src"), dst = get_tensor(arg(info, 1), "dst");
  nn::time_slice(src, dst, get_int(arg(info, 2), "offset", 0, int64_t(1) << 40));
  return info.Env().Undefined();
}

// kvCacheWrite(src, cache, offset)
KFAC_BINDING(KvCacheWrite) {
  Tensor src = get_tensor(arg(info, 0), "src"), cache = get_tensor(arg(info, 1), "cache");
  nn::kv_cache_write(src, cache, get_int(arg(info, 2), "offset", 0, int64_t(1) << 40));
  return info.Env().Undefined();
}

// ropeForward(x, out, { offset, base, convention: 'half' | 'interleaved' })
KFAC_BINDING(RopeForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), out = get_tensor(arg(info, 1), "out");
  RopeArgs r = rope_args(arg(info, 2));
  nn::rope_forward(x, out, r.offset, r.base, r.kind);
  return info.Env().Undefined();
}

// ropeBackward(dout, dx, { offset, base, convention })
KFAC_BINDING(RopeBackward) {
  Tensor dout = get_tensor(arg(info, 0), "dout"), dx = get_tensor(arg(info, 1), "dx");
  RopeArgs r = rope_args(arg(info, 2));
  nn::rope_backward(dout, dx, r.offset, r.base, r.kind);
  return info.Env().Undefined();
}

// dropoutForward(x, out, p, seed)
KFAC_BINDING(DropoutForward) {
  Tensor x = get_tensor(arg(info, 0), "x"), out = get_tensor(arg(info, 1), "out");
  float p = get_float(arg(info, 2), "p");
  int64_t seed = get_int(arg(info, 3), "seed", 0, (int64_t(1) << 53) - 1);
  nn::dropout_forward(x, out, p, uint64_t(seed));
  return info.Env().Undefined();
}

// dropoutBackward(dout, dx, p, seed)
KFAC_BINDING(DropoutBackward) {
  Tensor dout = get_tensor(arg(info, 0), "dout"), dx = get_tensor(arg(info, 1), "dx");
  float p = get_float(arg(info, 2), "p");
  int64_t seed = get_int(arg(info, 3), "seed", 0, (int64_t(1) << 53) - 1);
  nn::dropout_backward(dout, dx, p, uint64_t(seed));
  return info.Env().Undefined();
}

const Binding kBindings[] = {
    {"linearForward", LinearForward},         {"linearBackward", LinearBackward},
    {"embeddingForward", EmbeddingForward},   {"embeddingBackward", EmbeddingBackward},
    {"layerNormForward", LayerNormForward},   {"layerNormBackward", LayerNormBackward},
    {"rmsNormForward", RmsNormForward},       {"rmsNormBackward", RmsNormBackward},
    {"geluForward", GeluForward},             {"geluBackward", GeluBackward},
    {"colScale", ColScale},                   {"colScaleBackward", ColScaleBackward},
    {"actOutForward", ActOutForward},         {"actOutBackward", ActOutBackward},
    {"siluForward", SiluForward},             {"siluBackward", SiluBackward},
    {"swigluForward", SwigluForward},         {"swigluBackward", SwigluBackward},
    {"crossEntropy", CrossEntropy},           {"attentionForward", AttentionForward},
    {"attentionBackward", AttentionBackward}, {"ropeForward", RopeForward},
    {"ropeBackward", RopeBackward},           {"dropoutForward", DropoutForward},
    {"dropoutBackward", DropoutBackward},     {"kvCacheWrite", KvCacheWrite},
    {"timeSlice", TimeSlice},
    {"reluForward", ReluForward},             {"reluBackward", ReluBackward},
    {"gatedForward", GatedForward},           {"gatedBackward", GatedBackward},
};

}  // namespace

void register_nn_ops(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi

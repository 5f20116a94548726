// Bindings of the dtype conversion and the bf16 GEMM kernel choice (bf16 products run through
// the op list's matmul).
#include <napi.h>

#include "../core/ops.h"
#include "../cpu/bf16.h"
#include "args.h"
#include "errors.h"
#include "register.h"
#include "tensor_wrap.h"

namespace kfac::napi {

namespace {

// cast(x, 'float32' | 'bfloat16') → a new tensor
KFAC_BINDING(Cast) {
  Tensor x = get_tensor(arg(info, 0), "x");
  return TensorWrap::wrap(info.Env(), ops::cast(x, get_dtype(arg(info, 1), "dtype", DType::F32)));
}

// setBf16Kernel('auto' | 'portable' | 'avx512bf16' | 'amx') → the kernel now in use
KFAC_BINDING(SetBf16Kernel) {
  Napi::Value v = arg(info, 0);
  const char* want = "'auto', 'portable', 'avx512bf16' or 'amx'";
  if (!v.IsString()) throw_arg(ErrorCode::InvalidArgument, "kernel", want, describe(v));
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "auto") cpu::reset_bf16_kernel();
  else if (s == "portable") cpu::set_bf16_kernel(cpu::Bf16Kernel::Portable);
  else if (s == "avx512bf16") cpu::set_bf16_kernel(cpu::Bf16Kernel::Avx512Bf16);
  else if (s == "amx") cpu::set_bf16_kernel(cpu::Bf16Kernel::Amx);
  else throw_arg(ErrorCode::InvalidArgument, "kernel", want, "'" + s + "'");
  return Napi::String::New(info.Env(), cpu::bf16_kernel_name(cpu::bf16_kernel()));
}

// bf16Kernels() → { kernel, supported: { portable, avx512bf16, amx } }
KFAC_BINDING(Bf16Kernels) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("kernel", cpu::bf16_kernel_name(cpu::bf16_kernel()));
  Napi::Object s = Napi::Object::New(env);
  for (cpu::Bf16Kernel k : {cpu::Bf16Kernel::Portable, cpu::Bf16Kernel::Avx512Bf16, cpu::Bf16Kernel::Amx})
    s.Set(cpu::bf16_kernel_name(k), Napi::Boolean::New(env, cpu::bf16_kernel_supported(k)));
  o.Set("supported", s);
  return o;
}

}  // namespace

void register_dtype_ops(Napi::Env env, Napi::Object exports) {
  static const Binding kBindings[] = {
      {"cast", Cast},
      {"setBf16Kernel", SetBf16Kernel},
      {"bf16Kernels", Bf16Kernels},
  };
  register_table(env, exports, kBindings);
}

}  // namespace kfac::napi

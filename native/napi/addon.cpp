// The addon's entry: per-environment state and one registration call per op family.
#include <napi.h>

#include "errors.h"
#include "register.h"
#include "tensor_wrap.h"

namespace kfac::napi {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  TensorWrap::init(env, exports);
  register_system(env, exports);
  register_basic_ops(env, exports);
  register_nn_ops(env, exports);
  register_optim_ops(env, exports);
  register_eigh_ops(env, exports);
  register_kfac_ops(env, exports);
  register_device(env, exports);
  register_dtype_ops(env, exports);
#ifdef KFAC_WITH_CUDA
  register_cuda(env, exports);
#endif
  return exports;
}

}  // namespace kfac::napi

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return kfac::napi::Init(env, exports);
}

NODE_API_MODULE(kfac_peft, InitAddon)

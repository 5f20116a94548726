// cuBLASLt bf16 GEMMs (gemm_lt.cuh). Row-major C = op(A)·op(B) is the column-major
// Cᵀ = op(B)ᵀ·op(A)ᵀ, so Lt's "A" is our B and its "B" our A, with m = N, n = M.
// The handle, the workspace and the per-shape plans (descriptors and the heuristic's algorithm)
// are made on first use and kept for the process; the workspace is one block of kLtWorkspace
// bytes from the caching allocator. All of it runs on the context's stream.
// cuBLASLt assumes 256-byte-aligned operands unless told otherwise: a plan states each operand's
// alignment (the largest power of two up to 256 dividing its address, part of the plan's key),
// since batched and offset operands (a.raw() + i·M·K with M·K odd) are only 2-byte aligned.
// A shape or alignment Lt does not support (NOT_SUPPORTED / INVALID_VALUE from the heuristic or
// the matmul) returns false, and the caller takes cublasGemmEx; other errors throw.
#include "gemm_lt.cuh"

#include <cublasLt.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "context.cuh"

namespace kfac::cuda {

namespace {

constexpr size_t kLtWorkspace = size_t(32) << 20;

void check_lt(cublasStatus_t s, const char* what) { check(s, what); }

// Statuses that mean "not this shape or alignment": the caller falls back to cublasGemmEx.
bool unsupported(cublasStatus_t s) { return s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE; }

// The largest power of two ≤ 256 that divides the address.
uint32_t alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

std::atomic<uint64_t> g_calls{0}, g_fallbacks{0};

struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool ok = false;  // the heuristic found an algorithm
};

// transA, transB, M, N, K, lda, ldb, ldc, c_bf16, alignment of A, B, C (= D) in bytes
using LtKey = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, uint32_t, uint32_t,
                         uint32_t>;

struct LtState {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<LtKey, LtPlan> plans;
  std::mutex mu;
};

LtState& state() {
  static LtState* s = [] {
    auto* st = new LtState();  // kept for the process: handles and plans outlive every caller
    check_lt(cublasLtCreate(&st->handle), "cublasLtCreate");
    // from the caching allocator, so cuda.memory() counts it (an OutOfMemoryError names it as any
    // allocation); kept for the process like the handle
    st->workspace = (new DeviceBuffer(kLtWorkspace))->as<void>();
    return st;
  }();
  return *s;
}

int enabled_flag() {
  const char* e = std::getenv("KFAC_CUBLASLT");
  return e && std::strcmp(e, "0") == 0 ? 0 : 1;
}
int& lt_flag() {
  static int f = enabled_flag();
  return f;
}

LtPlan make_plan(LtState& st, const LtKey& k) {
  const auto [tA, tB, M, N, K, lda, ldb, ldc, c_bf16, alA, alB, alC] = k;
  LtPlan p;
  const cublasOperation_t oa = tB ? CUBLAS_OP_T : CUBLAS_OP_N;  // Lt's A is our B
  const cublasOperation_t ob = tA ? CUBLAS_OP_T : CUBLAS_OP_N;  // Lt's B is our A
  check_lt(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  check_lt(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &oa, sizeof oa), "Lt TRANSA");
  check_lt(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &ob, sizeof ob), "Lt TRANSB");
  // Column-major extents as stored: our B is N×K (op N) or K×N (op T), ld ldb; our A K×M or M×K.
  check_lt(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, tB ? K : N, tB ? N : K, ldb), "Lt layout A");
  check_lt(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, tA ? M : K, tA ? K : M, lda), "Lt layout B");
  check_lt(cublasLtMatrixLayoutCreate(&p.c, c_bf16 ? CUDA_R_16BF : CUDA_R_32F, N, M, ldc), "Lt layout C");
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  const size_t ws = kLtWorkspace;
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
           "Lt preference workspace");
  // Lt's A is our B and its B our A; C and D are the same buffer.
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alB},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alA},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alC},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alC},
  };
  for (const auto& [attr, al] : aligns) {
    const cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof al);
    if (s != CUBLAS_STATUS_SUCCESS) {
      cublasLtMatmulPreferenceDestroy(pref);
      check_lt(s, "Lt preference alignment");
    }
  }
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(st.handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s == CUBLAS_STATUS_SUCCESS && found > 0) {
    p.algo = res.algo;
    p.ok = true;
  } else if (!unsupported(s)) {
    check_lt(s, "cublasLtMatmulAlgoGetHeuristic");
  }
  return p;
}

}  // namespace

bool lt_enabled() { return lt_flag() != 0; }
LtCounts lt_counts() { return LtCounts{g_calls.load(), g_fallbacks.load()}; }
void set_lt_enabled(bool on) { lt_flag() = on ? 1 : 0; }

bool lt_gemm_bf16(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
                  const void* B, int64_t ldb, float beta, void* C, int64_t ldc, bool c_bf16) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
  LtState& st = state();
  const LtKey key{tA, tB, M, N, K, lda, ldb, ldc, c_bf16, alignment(A), alignment(B), alignment(C)};
  const LtPlan* plan;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    auto it = st.plans.find(key);
    if (it == st.plans.end()) it = st.plans.emplace(key, make_plan(st, key)).first;
    plan = &it->second;
  }
  if (!plan->ok) {
    ++g_fallbacks;
    return false;
  }
  const cublasStatus_t s = cublasLtMatmul(st.handle, plan->desc, &alpha, B, plan->a, A, plan->b, &beta, C, plan->c, C,
                                          plan->c, &plan->algo, st.workspace, kLtWorkspace, Context::get().stream());
  if (unsupported(s)) {
    ++g_fallbacks;
    return false;
  }
  check_lt(s, "cublasLtMatmul (bf16)");
  ++g_calls;
  return true;
}

}  // namespace kfac::cuda

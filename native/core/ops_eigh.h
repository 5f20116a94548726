// The symmetric eigendecomposition ops: argument checks and dispatch to the backend.
// Outputs are overwritten. Eigenvalues ascend; eigenvector j is column j of `vectors`.
#pragma once
#include "../cpu/eigh.h"
#include "tensor.h"

namespace kfac::ops {

struct EighOut {
  Tensor values, vectors;
  bool retried_double = false;
};

// a: [n, n] → values [n], vectors [n, n]. values_out / vectors_out (either may be null)
// receive the result when given; new tensors are made otherwise.
EighOut eigh(const Tensor& a, const Tensor* values_out, const Tensor* vectors_out,
             const cpu::EighOptions& opt);

struct EighRefreshOut {
  Tensor values, vectors;
  cpu::RefreshReport report;
};

// a: [n, n]; prev_vectors: [n, n]; prev_values: [n] or null. vectors_out may be
// prev_vectors itself (in-place refresh).
EighRefreshOut eigh_refresh(const Tensor& a, const Tensor& prev_vectors, const Tensor* prev_values,
                            const Tensor* values_out, const Tensor* vectors_out,
                            const cpu::RefreshOptions& opt);

struct EighBatchedOut {
  Tensor values, vectors;
  int64_t retried = 0;
};

// a: [B, r, r] → values [B, r], vectors [B, r, r].
EighBatchedOut eigh_batched(const Tensor& a, const Tensor* values_out, const Tensor* vectors_out,
                            const cpu::EighOptions& opt);

}  // namespace kfac::ops

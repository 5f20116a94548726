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

// eigh_batched into given outputs without waiting for the device: record value slot `slot` gets 1
// when every matrix was decomposed with finite results, else 0 (no error is raised for a matrix
// that does not converge: the caller reads the flag with the step record). values [B, n],
// vectors [B, n, n] float32 on a's device; record float32 there.
void eigh_batched_to(const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt,
                     const Tensor& record, int64_t slot);

}  // namespace kfac::ops

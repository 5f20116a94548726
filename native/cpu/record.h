// The step record's CPU kernels (ops::sum_squares_to, dot_many_to, trust_clip, ema_commit, copy_range_if in
// native/core/kfac_ops.h): the reference of native/cuda/record_body.h. Their sums are those
// of sum_squares_many and clip_newton_step, and their arithmetic is the one the preconditioner
// did on the host before the record existed, so a CPU run's numbers did not move.
#pragma once
#include <vector>

#include "../core/kfac_ops.h"
#include "../core/tensor.h"

namespace kfac::cpu_record {

void sum_squares_to(const std::vector<Tensor>& xs, const Tensor& record, int64_t offset, int64_t flag, int64_t check_at,
                    int64_t check_count);
void dot_many_to(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, const Tensor& record, int64_t offset);
void trust_clip(const std::vector<Tensor>& steps, const std::vector<Tensor>& params, const ops::TrustClipOptions& opt,
                const Tensor& record, int64_t offset);
void ema_commit(const Tensor& F, const Tensor& X, double beta, const Tensor& record, int64_t slot);
void copy_range_if(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count,
                   const Tensor& record, int64_t slot);

}  // namespace kfac::cpu_record

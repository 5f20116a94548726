// Checked entry points of embedding_forward / embedding_backward (native/core/nn.h).
#include "nn.h"

#include <string>

#include "check.h"
#include "dispatch.h"
#include "nn_args.h"

namespace kfac::nn {

using namespace detail;

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

}  // namespace kfac::nn

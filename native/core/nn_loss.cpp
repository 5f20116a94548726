// Checked entry point of cross_entropy (native/core/nn.h): logits [..., V], one target per row.
#include "nn.h"

#include <cmath>
#include <string>

#include "check.h"
#include "dispatch.h"
#include "nn_args.h"

namespace kfac::nn {

using namespace detail;

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

}  // namespace kfac::nn

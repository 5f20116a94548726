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
                                 const Tensor* dlogits, int32_t ignore_index, float dscale,
                                 const Tensor* loss_to) {
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
  if (loss_to) {
    check_f32(*loss_to, "lossTo");
    if (loss_to->device() != dev)
      throw_arg(ErrorCode::Device, "lossTo", std::string("a tensor on ") + device_name(dev) + " like logits",
                device_name(loss_to->device()));
    if (loss_to->numel() != 2)
      throw_arg(ErrorCode::Shape, "lossTo", "2 elements (one float64 value)", std::to_string(loss_to->numel()));
    check_no_alias(*loss_to, "lossTo", logits, "logits");
    if (dlogits) check_no_alias(*loss_to, "lossTo", *dlogits, "dlogits");
  }
  check_ids(targets, n, V, "targets", true, ignore_index);
  CrossEntropyResult r = KFAC_DISPATCH(dev, cross_entropy)(logits, targets, n, dlogits, ignore_index, dscale, loss_to);
  if (loss_to) return r;
  if (!std::isfinite(r.loss))
    throw_arg(ErrorCode::NotFinite, "logits", "finite values", "a row whose loss is NaN or Inf");
  return r;
}

}  // namespace kfac::nn

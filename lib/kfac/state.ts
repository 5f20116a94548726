/**
 * The one allocation helper of the optimizers' state: every factor, accumulator, eigenbasis,
 * inverse and step buffer is made here, "like" the weight it belongs to, on that weight's
 * device (float32). State never moves on its own: a step reads and writes it where it lives,
 * and only scalars (norms, clip scale) cross to the host. Loading a checkpoint (host tensors)
 * copies each saved tensor onto the weight's device once (`copyInto`, `stateFrom`).
 */
import * as ops from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';

/** A zero-filled state tensor of `shape` on the device of the parameter tensor `like`. */
export function stateLike(like: Tensor, shape: readonly number[]): Tensor {
  return Tensor.zeros(shape, { device: like.device });
}

/** An n×n identity state tensor on the device of the parameter tensor `like` (one upload when it is not the CPU). */
export function identityLike(like: Tensor, n: number): Tensor {
  const eye = new Float32Array(n * n);
  for (let i = 0; i < n; i++) eye[i * n + i] = 1;
  const host = Tensor.from(eye, [n, n]);
  if (like.device === 'cpu') return host;
  try {
    return host.to(like.device);
  } finally {
    host.dispose();
  }
}

/** dst ← src, where src may live on another device (a loaded checkpoint): one copy across. */
export function copyInto(src: Tensor, dst: Tensor): void {
  if (src.device === dst.device) {
    ops.copy(src, dst);
    return;
  }
  const moved = src.to(dst.device);
  try {
    ops.copy(moved, dst);
  } finally {
    moved.dispose();
  }
}

/** A copy of `src` (a loaded checkpoint tensor) on the device of `like`. */
export function stateFrom(src: Tensor, like: Tensor): Tensor {
  return src.device === like.device ? src.clone() : src.to(like.device);
}

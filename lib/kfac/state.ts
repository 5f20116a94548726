/**
 * The one allocation helper of the optimizers' state: every factor, accumulator, eigenbasis,
 * inverse and step buffer is made here, "like" the weight it belongs to. Today every tensor
 * lives on the CPU in float32; placing state on the weight's device is a change to this file.
 */
import { Tensor } from '../tensor/tensor.js';

/** A zero-filled state tensor of `shape` for the parameter tensor `like`. */
export function stateLike(_like: Tensor, shape: readonly number[]): Tensor {
  return Tensor.zeros(shape);
}

/** An n×n identity state tensor for the parameter tensor `like`. */
export function identityLike(like: Tensor, n: number): Tensor {
  const t = stateLike(like, [n, n]);
  const eye = new Float32Array(n * n);
  for (let i = 0; i < n; i++) eye[i * n + i] = 1;
  t.set(eye);
  return t;
}

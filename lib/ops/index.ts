/**
 * Elementwise operations and reductions. Outputs are overwritten, except `axpy`, which
 * accumulates into `y`. Reductions accumulate in float64 and return a JS number. Tensors may
 * live on either device (all on the same one); new outputs are made there.
 */
import { invalidArgument } from '../errors.js';
import { native } from '../native/loader.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkFinite } from '../util/validate.js';

/** Sets every element of x to value. */
export function fill(x: Tensor, value: number): Tensor {
  native().fill(handleOf(x, 'x'), checkFinite(value, 'value'));
  return x;
}

/** dst ← src (same number of elements). */
export function copy(src: Tensor, dst: Tensor): Tensor {
  native().copy(handleOf(src, 'src'), handleOf(dst, 'dst'));
  return dst;
}

/**
 * dst[dstOffset, dstOffset + count) ← src[srcOffset, srcOffset + count), in elements (flat,
 * row-major; one dtype). Both ranges must lie inside their tensors and not overlap. Stacks and
 * unstacks same-shaped tensors where they live, without a host round trip.
 */
export function copyRange(src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, count: number): Tensor {
  native().copyRange(handleOf(src, 'src'), srcOffset, handleOf(dst, 'dst'), dstOffset, count);
  return dst;
}

/** out ← a + b (out defaults to a new tensor; it may be a or b). */
export function add(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  const ha = handleOf(a, 'a');
  const hb = handleOf(b, 'b');
  const o = out ?? Tensor.empty(a.shape, { device: a.device });
  native().add(ha, hb, handleOf(o, 'out'));
  return o;
}

/** out ← alpha · x (out defaults to a new tensor; it may be x). */
export function scale(x: Tensor, alpha: number, out?: Tensor): Tensor {
  const hx = handleOf(x, 'x');
  const a = checkFinite(alpha, 'alpha');
  const o = out ?? Tensor.empty(x.shape, { device: x.device });
  native().scale(hx, a, handleOf(o, 'out'));
  return o;
}

/** y ← y + alpha · x (accumulates into y). */
export function axpy(alpha: number, x: Tensor, y: Tensor): Tensor {
  native().axpy(checkFinite(alpha, 'alpha'), handleOf(x, 'x'), handleOf(y, 'y'));
  return y;
}

/** Swaps the last two dimensions into a new tensor or into `out`. */
export function transpose(x: Tensor, out?: Tensor): Tensor {
  const h = native().transpose(handleOf(x, 'x'), out ? handleOf(out, 'out') : null);
  return out ?? Tensor.fromNative(h);
}

/** Σ x */
export function sum(x: Tensor): number {
  return native().sum(handleOf(x, 'x'));
}

/** Σ x² */
export function sumSquares(x: Tensor): number {
  return native().sumSquares(handleOf(x, 'x'));
}

/**
 * Σ x² of every tensor of the list, in list order (all on one device). Equal, tensor by tensor,
 * to {@link sumSquares}; on a device it is one reduction and one download for the whole list,
 * where a loop of `sumSquares` synchronises once per tensor.
 */
export function sumSquaresMany(tensors: readonly Tensor[]): number[] {
  const handles = tensors.map((t, i) => handleOf(t, `tensors[${i}]`));
  return handles.length === 0 ? [] : Array.from(native().sumSquaresMany(handles));
}

/** ‖x‖₂ over all elements. */
export function norm(x: Tensor): number {
  return native().norm(handleOf(x, 'x'));
}

/** Σ x·y over all elements. */
export function dot(x: Tensor, y: Tensor): number {
  return native().dot(handleOf(x, 'x'), handleOf(y, 'y'));
}

/**
 * ⟨xs[i], ys[i]⟩ of every pair, in list order (all on one device, each pair of one shape). Equal,
 * pair by pair, to {@link dot} on the CPU; on a device one reduction and one download for the
 * whole list, where a loop of `dot` synchronises once per pair.
 */
export function dotMany(xs: readonly Tensor[], ys: readonly Tensor[]): number[] {
  const hx = xs.map((t, i) => handleOf(t, `xs[${i}]`));
  const hy = ys.map((t, i) => handleOf(t, `ys[${i}]`));
  if (hx.length !== hy.length) invalidArgument('ys', `${hx.length} tensors (one per xs)`, `${hy.length}`);
  return hx.length === 0 ? [] : Array.from(native().dotMany(hx, hy));
}
export { cast } from './cast.js';

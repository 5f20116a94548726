/** Shape helpers shared by the layer modules (lib/nn/layers.ts and its family files); not public API. */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';

export const MAX_DIM = 2 ** 31 - 1;

/** Throws unless `x` is a Tensor whose last dimension is `want`. */
export function lastDim(x: Tensor, want: number, name: string): void {
  if (!(x instanceof Tensor)) invalidArgument(name, 'a Tensor', describe(x));
  if (x.rank < 1 || x.shape[x.rank - 1] !== want)
    throw new ShapeError(`${name}: expected [..., ${want}], got [${x.shape.join(', ')}]`, { argument: name, expected: `[..., ${want}]`, got: `[${x.shape.join(', ')}]` });
}

export const withLast = (s: readonly number[], last: number): number[] => [...s.slice(0, -1), last];

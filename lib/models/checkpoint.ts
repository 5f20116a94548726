/**
 * Gradient checkpointing per transformer block: the forward keeps only each block's input (one
 * [B, T, C] tensor per block) and frees the block's activations; the backward runs the block's
 * forward again from that input, then its backward, then frees the block again. Peak activation
 * memory is the block inputs plus one block's activations instead of every block's.
 *
 * The saved inputs and gradients take the activations' storage (float32, or bfloat16 for bf16
 * activations). The recomputation is the same operations on the same values in the same order, so the
 * loss and the gradients are identical to the plain path, bit for bit: dropout generators (their
 * call counters) are put back to where they stood before the block's first forward, so the
 * recomputed masks are the ones of the original pass.
 *
 * K-FAC reads each tracked layer's input and output gradient after the backward; a checkpointed
 * block's are freed when its backward ends. The model therefore calls `onBlockBackward` after
 * each block's backward, while they are alive: `captureBlockwise` points it at the optimizer's
 * capture of the layers under that block's path (lib/kfac: `capture({ batchSize, layers })`).
 */
import { Dropout } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { copy } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';

/** What a model hands its `onBlockBackward` hook after a checkpointed block's backward. */
export interface BlockBackwardContext {
  /** Module path of the block with a trailing dot (`model.layers.3.`): the prefix of its layers' names. */
  readonly block: string;
  readonly index: number;
  /** Sequences in the batch (the K-FAC capture's batch size). */
  readonly batchSize: number;
}

/** Dropout generators of a block and their call counters before its forward. */
type Counters = [Module, number][];

function counters(block: Module): Counters {
  const out: Counters = [];
  for (const [, m] of block.namedModules()) {
    if (m instanceof Dropout) out.push([m, m.calls]);
    else {
      const a = m as unknown as { dropoutCalls?: unknown };
      if (typeof a.dropoutCalls === 'number') out.push([m, a.dropoutCalls]);
    }
  }
  return out;
}

function restore(c: Counters): void {
  for (const [m, n] of c) {
    if (m instanceof Dropout) m.calls = n;
    else (m as unknown as { dropoutCalls: number }).dropoutCalls = n;
  }
}

/** @internal The checkpointed forward and backward over a model's blocks. */
export class BlockCheckpoints implements Disposable {
  /** saved[i]: block i's input; saved[n]: the last block's output. */
  #saved: Tensor[] = [];
  #grads: [Tensor | null, Tensor | null] = [null, null];
  #counters: Counters[] = [];
  #run: ((i: number, x: Tensor) => Tensor) | null = null;
  #B = 0;

  /** Whether the last forward was checkpointed (its backward must recompute). */
  get active(): boolean {
    return this.#run !== null;
  }

  /** Forgets the last forward (a forward that is not checkpointed follows). */
  reset(): void {
    this.#run = null;
  }

  /** A buffer like `like` (device, shape and dtype: bf16 activations are saved as bf16). */
  #buffer(list: (Tensor | null)[], i: number, like: Tensor): Tensor {
    const t = list[i];
    if (t && !t.disposed && t.device === like.device && t.dtype === like.dtype && t.shape.length === like.shape.length && t.shape.every((d, k) => d === like.shape[k])) return t;
    t?.dispose();
    const n = Tensor.empty(like.shape, { device: like.device, dtype: like.dtype === 'bfloat16' ? 'bfloat16' : 'float32' });
    list[i] = n;
    return n;
  }

  /** Runs `run(i, x)` over the blocks, keeping only each block's input. Returns the last block's output (valid until the next forward). */
  forward(blocks: readonly Module[], x: Tensor, B: number, run: (i: number, x: Tensor) => Tensor): Tensor {
    this.#run = run;
    this.#B = B;
    this.#counters = [];
    let cur = copy(x, this.#buffer(this.#saved, 0, x));
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i]!;
      this.#counters.push(counters(block));
      const y = run(i, cur);
      cur = copy(y, this.#buffer(this.#saved, i + 1, y));
      block.releaseWorkspaces();
    }
    return cur;
  }

  /**
   * Backward through blocks n−1 … lowest: each one's forward is recomputed from its saved input,
   * then `back(i, dOut)` runs, then `after(i, ctx)`, then the block's activations are freed.
   * Returns the gradient of block `lowest`'s input (valid until the next backward).
   */
  backward(
    blocks: readonly Module[],
    paths: readonly string[],
    dOut: Tensor,
    lowest: number,
    back: (i: number, d: Tensor) => Tensor,
    after: ((ctx: BlockBackwardContext) => void) | null,
  ): Tensor {
    const run = this.#run;
    if (run === null) throw new Error('BlockCheckpoints.backward without a checkpointed forward');
    let d = dOut;
    let slot = 0;
    for (let i = blocks.length - 1; i >= lowest; i--) {
      const block = blocks[i]!;
      restore(this.#counters[i]!);
      try {
        run(i, this.#saved[i]!);
        const dx = back(i, d);
        after?.({ block: paths[i]!, index: i, batchSize: this.#B });
        d = copy(dx, this.#buffer(this.#grads, slot, dx));
        slot = 1 - slot;
      } finally {
        block.releaseWorkspaces();
      }
    }
    return d;
  }

  /** Bytes of the saved block inputs and gradient buffers. */
  get nbytes(): number {
    let n = 0;
    for (const t of [...this.#saved, ...this.#grads]) if (t && !t.disposed) n += t.nbytes;
    return n;
  }

  dispose(): void {
    for (const t of this.#saved) t.dispose();
    this.#saved = [];
    for (const t of this.#grads) t?.dispose();
    this.#grads = [null, null];
    this.#run = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Anything with K-FAC's capture (a KFAC optimizer or its preconditioner). */
export interface BlockCapture {
  capture?(ctx: { batchSize: number; layers?: string }): void;
}

/**
 * Points the model's `onBlockBackward` at `optimizer.capture({ batchSize, layers: block })`,
 * so a checkpointed model hands K-FAC each block's inputs and output gradients before it frees
 * them; the capture after the backward (the Trainer's, or the one the step makes) then takes
 * the layers outside the blocks and ends the micro-batch. An optimizer without capture clears
 * the hook. Harmless without checkpointing (the hook is only called by checkpointed backwards).
 */
export function captureBlockwise(model: { onBlockBackward: ((ctx: BlockBackwardContext) => void) | null }, optimizer: BlockCapture): void {
  const cap = optimizer.capture?.bind(optimizer);
  model.onBlockBackward = cap ? (c) => cap({ batchSize: c.batchSize, layers: c.block }) : null;
}

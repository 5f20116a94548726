/** Activations and the MLP built on one: GELU, SiLU, SwiGLUMLP (Llama), and inverted Dropout. */
import { describe, invalidArgument } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkFinite, checkInteger } from '../util/validate.js';
import * as F from './functional.js';
import { Module, saved, storageOf } from './module.js';
import { withLast } from './dims.js';
import { Linear } from './linear.js';

/** GELU, exact (erf, BERT/GPT-2 "gelu") or the tanh approximation ("gelu_new", "gelu_pytorch_tanh"). */
export class GELU extends Module {
  readonly approximate: F.GeluApproximate;
  #x: Tensor | null = null;

  constructor(options: { approximate?: F.GeluApproximate } = {}) {
    super();
    const a = options.approximate ?? 'erf';
    if (a !== 'erf' && a !== 'tanh') invalidArgument('approximate', "'erf' or 'tanh'", describe(a));
    this.approximate = a;
  }

  forward(x: Tensor): Tensor {
    const out = this.workspace('out', x.shape, storageOf(x));
    F.geluForward(x, out, this.approximate);
    this.#x = x;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    const x = saved(this.#x, 'GELU');
    return F.geluBackward(x, dOut, this.workspace('dx', x.shape, storageOf(x)), this.approximate);
  }
}

/** SiLU (swish): x·σ(x). */
export class SiLU extends Module {
  #x: Tensor | null = null;

  forward(x: Tensor): Tensor {
    const out = this.workspace('out', x.shape);
    F.siluForward(x, out);
    this.#x = x;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    const x = saved(this.#x, 'SiLU');
    return F.siluBackward(x, dOut, this.workspace('dx', x.shape));
  }
}

export interface SwiGLUMLPOptions {
  /** Biases on the three projections (default false, as in Llama). */
  bias?: boolean;
  seed?: number;
}

/** Llama's MLP: down_proj(silu(gate_proj(x)) · up_proj(x)). x [..., dim] → [..., dim]. */
export class SwiGLUMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  #g: Tensor | null = null;
  #u: Tensor | null = null;

  constructor(dim: number, hidden: number, options: SwiGLUMLPOptions = {}) {
    super();
    const bias = options.bias ?? false;
    const seed = options.seed ?? 0;
    this.gate_proj = this.registerModule('gate_proj', new Linear(dim, hidden, { bias, seed }));
    this.up_proj = this.registerModule('up_proj', new Linear(dim, hidden, { bias, seed: seed + 2 }));
    this.down_proj = this.registerModule('down_proj', new Linear(hidden, dim, { bias, seed: seed + 4 }));
  }

  forward(x: Tensor): Tensor {
    const g = this.gate_proj.forward(x);
    const u = this.up_proj.forward(x);
    const h = this.workspace('h', g.shape);
    F.swigluForward(g, u, h);
    this.#g = g;
    this.#u = u;
    return this.down_proj.forward(h);
  }

  backward(dOut: Tensor): Tensor {
    const g = saved(this.#g, 'SwiGLUMLP');
    const u = saved(this.#u, 'SwiGLUMLP');
    const dh = this.down_proj.backward(dOut)!;
    const dg = this.workspace('dg', g.shape);
    const du = this.workspace('du', u.shape);
    F.swigluBackward(g, u, dh, dg, du);
    const dx = this.workspace('dx', withLast(g.shape, this.gate_proj.inFeatures));
    this.gate_proj.backward(dg, { dx, accumulate: false });
    this.up_proj.backward(du, { dx, accumulate: true });
    return dx;
  }
}

// ---------------------------------------------------------------- Dropout

/**
 * Inverted dropout. Each training forward draws its mask from (seed + call number, element
 * index) with a counter-based generator, so a run is reproducible from `seed`; the backward
 * rebuilds the same mask. Identity in eval mode and when p = 0 (input returned as is).
 */
export class Dropout extends Module {
  readonly p: number;
  seed: number;
  /** Training forwards so far (the next one uses seed + calls). */
  calls = 0;
  #last: { seed: number; shape: readonly number[] } | null = null;
  #identity = false;

  constructor(p: number, options: { seed?: number } = {}) {
    super();
    this.p = checkFinite(p, 'p');
    if (p < 0 || p > 1) invalidArgument('p', 'a probability in [0, 1]', describe(p));
    this.seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) {
      this.#identity = true;
      this.#last = { seed: 0, shape: x.shape };
      return x;
    }
    const seed = (this.seed + this.calls++) % Number.MAX_SAFE_INTEGER;
    this.#identity = false;
    this.#last = { seed, shape: x.shape };
    return F.dropoutForward(x, this.workspace('out', x.shape, storageOf(x)), this.p, seed);
  }

  backward(dOut: Tensor): Tensor {
    const last = saved(this.#last, 'Dropout');
    if (this.#identity) return dOut;
    return F.dropoutBackward(dOut, this.workspace('dx', last.shape, storageOf(dOut)), this.p, last.seed);
  }
}

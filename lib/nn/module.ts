/**
 * A small module system with explicit backward passes (no autograd tape).
 *
 * Each module's `forward(...)` computes its output and keeps what its `backward(dOut)` needs
 * (its inputs, saved statistics); `backward(dOut)` returns the gradient with respect to the
 * input (overwritten) and adds (+=) the gradients of its trainable parameters into their
 * `grad` tensors. Call `zeroGrad()` between steps.
 *
 * Buffers: outputs and input gradients live in per-module workspaces sized by the batch shape
 * and reused while the shape repeats, so a steady training loop allocates no native memory.
 * A tensor returned by forward/backward therefore stays valid only until the same module's
 * next forward/backward; copy it (`clone()`) to keep it. A module instance may be called once
 * per forward pass (weight sharing needs separate handling).
 *
 * Device: a module and everything it owns (parameters, gradients, workspaces) live on one
 * device, 'cpu' at construction; `to(device)` moves them all, and the forward/backward of a
 * module on 'cuda' runs on the device (inputs must be there too; token ids stay host arrays).
 */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { native } from '../native/loader.js';
import { type Device, Tensor } from '../tensor/tensor.js';

/** One named parameter as listed by `parameters()`. Writes to `trainable` and `grad` go to the module. */
export interface Parameter {
  /** Dotted path, e.g. `layers.0.attn.q_proj.weight`. */
  readonly name: string;
  readonly tensor: Tensor;
  /** Accumulated gradient (+=); null until the first zeroGrad()/backward while trainable. */
  grad: Tensor | null;
  trainable: boolean;
}

/** A named, live view of a parameter slot: reads and writes go to the slot. */
export function parameterView(name: string, slot: ParamSlot): Parameter {
  return {
    name,
    get tensor() {
      return slot.tensor;
    },
    get grad() {
      return slot.grad;
    },
    set grad(g: Tensor | null) {
      slot.grad = g;
    },
    get trainable() {
      return slot.trainable;
    },
    set trainable(v: boolean) {
      slot.trainable = v;
    },
  };
}

/** @internal A parameter owned by one module. */
export class ParamSlot {
  grad: Tensor | null = null;
  constructor(
    public tensor: Tensor,
    public trainable: boolean,
  ) {}

  /** The gradient buffer to accumulate into, or null when frozen (allocated zeroed on first use). */
  gradTarget(): Tensor | null {
    if (!this.trainable) return null;
    if (this.grad === null || this.grad.disposed) this.grad = Tensor.zeros(this.tensor.shape, { device: this.tensor.device });
    return this.grad;
  }

  /** Moves the parameter and its gradient to `device` (the old tensors are disposed). */
  moveTo(device: Device): void {
    if (this.tensor.device !== device) {
      const t = this.tensor.to(device);
      this.tensor.dispose();
      this.tensor = t;
    }
    if (this.grad && !this.grad.disposed && this.grad.device !== device) {
      const g = this.grad.to(device);
      this.grad.dispose();
      this.grad = g;
    }
  }
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** The storage dtype of an activation workspace that follows tensor t (float32 or bfloat16). */
export const storageOf = (t: Tensor): 'float32' | 'bfloat16' => (t.dtype === 'bfloat16' ? 'bfloat16' : 'float32');

export abstract class Module implements Disposable {
  /** Training mode (dropout active). */
  training = true;
  readonly #params = new Map<string, ParamSlot>();
  readonly #children = new Map<string, Module>();
  readonly #work = new Map<string, Tensor>();
  readonly #views = new Map<string, { base: Tensor; view: Tensor }>();
  #device: Device = 'cpu';

  /** The device of this module's parameters, gradients and workspaces. */
  get device(): Device {
    return this.#device;
  }

  /**
   * Moves every parameter, gradient and buffer of this module and its submodules to `device`
   * (a copy each; the old tensors are disposed), and makes later workspaces there. Returns this.
   * Tensors held elsewhere (an optimizer's state) are not moved: build optimizers after `to`.
   */
  to(device: Device): this {
    if (device !== 'cpu' && device !== 'cuda') invalidArgument('device', "'cpu' or 'cuda'", describe(device));
    for (const p of this.#params.values()) p.moveTo(device);
    for (const t of this.#work.values()) t.dispose();
    this.#work.clear();
    for (const v of this.#views.values()) v.view.dispose();
    this.#views.clear();
    this.moveBuffers(device);
    this.#device = device;
    for (const m of this.#children.values()) m.to(device);
    return this;
  }

  /** Moves tensors a subclass holds outside parameters and workspaces (none by default). */
  protected moveBuffers(_device: Device): void {}

  protected registerParameter(name: string, tensor: Tensor, trainable = true): ParamSlot {
    if (this.#params.has(name) || this.#children.has(name)) invalidArgument('name', 'a new parameter name', describe(name));
    const slot = new ParamSlot(tensor, trainable);
    this.#params.set(name, slot);
    return slot;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    if (this.#params.has(name) || this.#children.has(name)) invalidArgument('name', 'a new submodule name', describe(name));
    this.#children.set(name, m);
    return m;
  }

  /** Unregisters a submodule (for example an adapter detached from a layer) and returns it; it is not disposed. */
  protected removeModule(name: string): Module | undefined {
    const m = this.#children.get(name);
    this.#children.delete(name);
    return m;
  }

  /**
   * A workspace tensor for `key` of exactly `shape` and `dtype` (default float32; activations
   * take their input's dtype, bfloat16 where a model stores activations so): the same tensor
   * while shape and dtype repeat, a fresh one (the old one disposed) when they change.
   * Contents are unspecified.
   */
  protected workspace(key: string, shape: readonly number[], dtype: 'float32' | 'bfloat16' = 'float32'): Tensor {
    const t = this.#work.get(key);
    if (t && !t.disposed && t.dtype === dtype && sameShape(t.shape, shape)) return t;
    t?.dispose();
    const n = Tensor.empty(shape, { device: this.#device, dtype });
    this.#work.set(key, n);
    return n;
  }

  /** A cached reshaped view of `base` (rebuilt only when base or shape changes). */
  protected view(key: string, base: Tensor, shape: readonly number[]): Tensor {
    const c = this.#views.get(key);
    if (c && c.base === base && !c.view.disposed && !base.disposed && sameShape(c.view.shape, shape)) return c.view;
    const v = base.reshape(shape);
    this.#views.set(key, { base, view: v });
    return v;
  }

  /** Named parameters of this module and its submodules, depth first. */
  parameters(prefix = ''): Parameter[] {
    const out: Parameter[] = [];
    for (const [n, slot] of this.#params) out.push(parameterView(prefix + n, slot));
    for (const [n, m] of this.#children) out.push(...m.parameters(`${prefix}${n}.`));
    return out;
  }

  /** Submodules with dotted names (this module first, as ''). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.#children) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Sets every trainable parameter's gradient to zero (allocating it on first use), and any existing gradient of a frozen one. */
  zeroGrad(): void {
    for (const p of this.#params.values()) {
      const g = p.trainable ? p.gradTarget() : p.grad && !p.grad.disposed ? p.grad : null;
      if (g) native().fill(g.handle, 0);
    }
    for (const m of this.#children.values()) m.zeroGrad();
  }

  /** Marks every parameter (recursively) as frozen: backward writes no gradient for it and skips its work. */
  freeze(): this {
    for (const p of this.#params.values()) p.trainable = false;
    for (const m of this.#children.values()) m.freeze();
    return this;
  }

  unfreeze(): this {
    for (const p of this.#params.values()) p.trainable = true;
    for (const m of this.#children.values()) m.unfreeze();
    return this;
  }

  train(on = true): this {
    this.training = on;
    for (const m of this.#children.values()) m.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Frees the workspaces and cached views of this module and its submodules; parameters and
   * gradients stay. The next forward allocates them again (gradient checkpointing releases a
   * block's activations this way between its forward and its recomputation).
   */
  releaseWorkspaces(): void {
    for (const t of this.#work.values()) t.dispose();
    this.#work.clear();
    for (const v of this.#views.values()) v.view.dispose();
    this.#views.clear();
    for (const m of this.#children.values()) m.releaseWorkspaces();
  }

  /** Frees parameters, gradients and workspaces (recursively). Idempotent. */
  dispose(): void {
    for (const p of this.#params.values()) {
      p.tensor.dispose();
      p.grad?.dispose();
    }
    for (const t of this.#work.values()) t.dispose();
    this.#work.clear();
    for (const v of this.#views.values()) v.view.dispose();
    this.#views.clear();
    for (const m of this.#children.values()) m.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Throws unless a forward pass has saved state for the backward. */
export function saved<T>(v: T | null, module: string): T {
  if (v === null) invalidArgument('backward', `a call after ${module}.forward()`, 'no saved forward state');
  return v;
}

/** Throws unless `shape` equals `want` (for parameters supplied by the caller). */
export function expectShape(t: Tensor, want: readonly number[], name: string): Tensor {
  if (!(t instanceof Tensor)) invalidArgument(name, 'a Tensor', describe(t));
  if (!sameShape(t.shape, want))
    throw new ShapeError(`${name}: expected shape [${want.join(', ')}], got [${t.shape.join(', ')}]`, { argument: name, expected: `shape [${want.join(', ')}]`, got: `[${t.shape.join(', ')}]` });
  return t;
}

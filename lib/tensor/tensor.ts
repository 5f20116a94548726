/**
 * Tensor: an n-dimensional array in native memory on one device ('cpu', or 'cuda' in the
 * CUDA build). Every op takes tensors on either device and returns results on that device;
 * `t.to(device)` moves a copy, and `toArray()` reads cpu float32 tensors only.
 *
 * Memory is freed by dispose() (idempotent) or `using t = …` (Symbol.dispose); a finalizer
 * frees it as a backstop when the object is garbage collected, and native bytes are reported
 * to V8 so the collector sees them. Data crosses between JS and native memory with one copy.
 */
import { describe, DisposedError, invalidArgument, ShapeError } from '../errors.js';
import type { NativeTensor } from '../native/addon.js';
import { native } from '../native/loader.js';
import { checkFinite, checkInteger, checkOptions, checkShape, numel } from '../util/validate.js';

export type DType = 'float32' | 'float16' | 'bfloat16';
export type Device = 'cpu' | 'cuda';
export type NestedArray = number | readonly NestedArray[];

/** Where a new tensor lives and its element type (default cpu, float32). */
export interface PlacementOptions {
  device?: Device;
  /** float32, or bfloat16 storage (cuda matmul operands). */
  dtype?: 'float32' | 'bfloat16';
}

const DEVICES: readonly Device[] = ['cpu', 'cuda'];
const STORAGE: readonly string[] = ['float32', 'bfloat16'];

/** Reads { device, dtype } options; invalid values are InvalidArgumentErrors naming the field. */
export function placement(options: PlacementOptions | undefined, fallback: Device = 'cpu'): { device: Device; dtype: 'float32' | 'bfloat16' } {
  const o = checkOptions(options ?? {});
  const device = o['device'] ?? fallback;
  if (!(DEVICES as readonly unknown[]).includes(device)) invalidArgument('device', "'cpu' or 'cuda'", describe(device));
  const dtype = o['dtype'] ?? 'float32';
  if (!STORAGE.includes(dtype as string)) invalidArgument('dtype', "'float32' or 'bfloat16'", describe(dtype));
  return { device: device as Device, dtype: dtype as 'float32' | 'bfloat16' };
}

export interface RandnOptions {
  /** Seed of the counter-based generator (same values on every machine and thread count). */
  seed?: number;
  mean?: number;
  std?: number;
}

export interface RandOptions {
  seed?: number;
  low?: number;
  high?: number;
}

export class Tensor implements Disposable {
  #h: NativeTensor | null;
  #shape: readonly number[];

  private constructor(h: NativeTensor) {
    this.#h = h;
    this.#shape = Object.freeze(h.shape); // a fresh array from native code: no copy needed
  }

  /** @internal Wraps a native handle (used by the op wrappers). */
  static fromNative(h: NativeTensor): Tensor {
    return new Tensor(h);
  }

  /**
   * A tensor from values. `data` is a Float32Array, a flat array of numbers (give `shape`),
   * or a nested array whose shape is inferred.
   */
  static from(data: Float32Array | readonly number[] | NestedArray, shape?: readonly number[]): Tensor {
    let flat: Float32Array;
    let inferred: readonly number[];
    if (data instanceof Float32Array) {
      flat = data;
      inferred = [data.length];
    } else if (ArrayBuffer.isView(data)) {
      return invalidArgument('data', 'a Float32Array, an array of numbers or a nested array', describe(data));
    } else if (typeof data === 'number' || Array.isArray(data)) {
      const dims: number[] = [];
      const values: number[] = [];
      flatten(data as NestedArray, 0, dims, values);
      flat = Float32Array.from(values);
      inferred = dims;
    } else {
      return invalidArgument('data', 'a Float32Array, an array of numbers or a nested array', describe(data));
    }
    const s = shape === undefined ? inferred : checkShape(shape);
    if (numel(s) !== flat.length)
      throw new ShapeError(`data: expected ${numel(s)} values for shape [${s.join(', ')}], got ${flat.length} values`, {
        argument: 'data',
        expected: `${numel(s)} values`,
        got: `${flat.length} values`,
      });
    return new Tensor(native().NativeTensor.fromFloat32Array(flat, s));
  }

  /** Zeros on `options.device` (default cpu): `Tensor.zeros(w.shape, { device: w.device })`. */
  static zeros(shape: readonly number[], options?: PlacementOptions): Tensor {
    return new Tensor(native().NativeTensor.zeros(checkShape(shape), placement(options)));
  }

  /** Uninitialised memory: for outputs that an op overwrites completely. */
  static empty(shape: readonly number[], options?: PlacementOptions): Tensor {
    return new Tensor(native().NativeTensor.empty(checkShape(shape), placement(options)));
  }

  static full(shape: readonly number[], value: number, options?: { device?: Device }): Tensor {
    const v = checkFinite(value, 'value');
    const t = Tensor.empty(shape, { device: placement(options).device });
    native().fill(t.handle, v);
    return t;
  }

  /** Normal(mean, std) values from a seeded counter-based generator. */
  static randn(shape: readonly number[], options: RandnOptions = {}): Tensor {
    const o = checkOptions(options);
    const seed = o['seed'] === undefined ? 0 : checkInteger(o['seed'], 'seed', 0, Number.MAX_SAFE_INTEGER);
    const mean = o['mean'] === undefined ? 0 : checkFinite(o['mean'], 'mean');
    const std = o['std'] === undefined ? 1 : checkFinite(o['std'], 'std');
    if (std < 0) invalidArgument('std', 'a non-negative number', describe(std));
    return new Tensor(native().NativeTensor.randn(checkShape(shape), seed, mean, std));
  }

  /** Uniform values in [low, high) from a seeded counter-based generator. */
  static rand(shape: readonly number[], options: RandOptions = {}): Tensor {
    const o = checkOptions(options);
    const seed = o['seed'] === undefined ? 0 : checkInteger(o['seed'], 'seed', 0, Number.MAX_SAFE_INTEGER);
    const low = o['low'] === undefined ? 0 : checkFinite(o['low'], 'low');
    const high = o['high'] === undefined ? 1 : checkFinite(o['high'], 'high');
    if (!(low < high)) invalidArgument('high', `a number above low (${low})`, describe(high));
    return new Tensor(native().NativeTensor.randUniform(checkShape(shape), seed, low, high));
  }

  get shape(): readonly number[] {
    return this.#shape;
  }
  get rank(): number {
    return this.#shape.length;
  }
  /** Number of elements. */
  get size(): number {
    return numel(this.#shape);
  }
  get dtype(): DType {
    return this.handle.dtype;
  }
  get device(): Device {
    return this.handle.device;
  }
  get disposed(): boolean {
    return this.#h === null || this.#h.disposed;
  }
  /** Bytes of native memory this tensor holds. */
  get nbytes(): number {
    return this.#h === null ? 0 : this.#h.nbytes;
  }

  /** @internal The native handle; throws DisposedError after dispose(). */
  get handle(): NativeTensor {
    const h = this.#h;
    if (h === null || h.disposed)
      throw new DisposedError('tensor: expected a live tensor, got a disposed tensor', {
        argument: 'tensor',
        expected: 'a live tensor',
        got: 'a disposed tensor',
        hint: 'the tensor was disposed; keep it alive until its last use',
      });
    return h;
  }

  /**
   * A copy on `device` (and in `options.dtype`, default this tensor's): always a new tensor,
   * even when nothing changes. The only way values cross between devices.
   */
  to(device: Device, options: { dtype?: 'float32' | 'bfloat16' } = {}): Tensor {
    const p = placement({ ...checkOptions(options), device });
    return new Tensor(this.handle.to(p.device, { dtype: options.dtype === undefined ? undefined : p.dtype }));
  }

  /** A copy of the values (row-major; bfloat16 widened to float32). A DeviceError for a cuda tensor: call `t.to('cpu')` first. */
  toArray(): Float32Array {
    return this.handle.toFloat32Array();
  }

  /** Nested JS arrays (for printing and small tensors). */
  toNested(): NestedArray {
    const flat = this.toArray();
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.#shape.length) return flat[offset] ?? 0;
      const n = this.#shape[dim] ?? 0;
      const stride = numel(this.#shape.slice(dim + 1));
      return Array.from({ length: n }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  /**
   * Overwrites the values from a Float32Array of the same size. On a device this is one
   * upload (host values staged in a temporary host tensor, copied across, then freed).
   */
  set(data: Float32Array): this {
    const h = this.handle;
    if (h.device === 'cpu') {
      h.copyFromFloat32Array(data);
      return this;
    }
    const staged = Tensor.empty(this.#shape);
    try {
      staged.handle.copyFromFloat32Array(data);
      const moved = staged.handle.to(h.device, { dtype: h.dtype === 'bfloat16' ? 'bfloat16' : undefined });
      try {
        native().copy(moved, h);
      } finally {
        moved.dispose();
      }
    } finally {
      staged.dispose();
    }
    return this;
  }

  /** A view with a new shape over the same memory. */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.handle.reshape(checkShape(shape)));
  }

  clone(): Tensor {
    return new Tensor(this.handle.clone());
  }

  /** Frees the native memory now. Safe to call more than once. */
  dispose(): void {
    if (this.#h) this.#h.dispose();
    this.#h = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    if (this.disposed) return 'Tensor(disposed)';
    return `Tensor(shape=[${this.#shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }
}

function ragged(): never {
  throw new ShapeError('data: expected a rectangular nested array, got a ragged one', {
    argument: 'data',
    expected: 'a rectangular nested array',
    got: 'a ragged one',
  });
}

function flatten(x: NestedArray, _depth: number, dims: number[], out: number[]): void {
  for (let cur: unknown = x; Array.isArray(cur); cur = cur[0]) dims.push(cur.length);
  const walk = (v: unknown, depth: number): void => {
    if (depth === dims.length) {
      if (typeof v !== 'number') {
        if (Array.isArray(v)) ragged();
        invalidArgument('data', 'numbers or arrays of numbers', describe(v));
      }
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== dims[depth]) ragged();
    for (const e of v) walk(e, depth + 1);
  };
  walk(x, 0);
}

/** Throws unless t is a live Tensor; returns its native handle. */
export function handleOf(t: unknown, name: string): NativeTensor {
  if (!(t instanceof Tensor)) return invalidArgument(name, 'a Tensor', describe(t));
  if (t.disposed) throw new DisposedError(`${name}: expected a live tensor, got a disposed tensor`, { argument: name, expected: 'a live tensor', got: 'a disposed tensor' });
  return t.handle;
}

/**
 * A float64 that stays where it was computed until someone needs it — a model's loss on the GPU
 * (docs/KFAC.md#one-read-per-step). It lives in a float32 tensor of two elements holding the
 * value's 8 bytes (native/core/record_math.h), so it arrives exactly. `value()` downloads it
 * once (one wait for the device; on the CPU a plain read). A step that copies it into its own
 * record and reads that record calls `resolve()` with what it read, so nobody waits twice.
 * Once read or resolved, the tensor is freed and the number is kept.
 */
import { InvalidArgumentError } from '../errors.js';
import { type Device, Tensor } from './tensor.js';

export class DeviceValue {
  #t: Tensor | null;
  #v: number | undefined;

  /** A value slot on `device`, to be written by an op (e.g. crossEntropy's `lossTo`). */
  constructor(device: Device) {
    this.#t = Tensor.empty([2], { device });
  }

  /** True until the value is read or resolved. */
  get pending(): boolean {
    return this.#v === undefined;
  }

  /** The two floats that hold it (only while pending). */
  get tensor(): Tensor {
    if (!this.#t) throw new InvalidArgumentError('DeviceValue: the value was already read; its tensor is freed', { argument: 'tensor' });
    return this.#t;
  }

  /** The number (downloaded at the first call when still pending: one wait on a device). */
  value(): number {
    if (this.#v !== undefined) return this.#v;
    const t = this.tensor;
    const host = t.device === 'cpu' ? t : t.to('cpu');
    try {
      const raw = host.toArray();
      this.resolve(new Float64Array(raw.buffer, raw.byteOffset, 1)[0]!);
    } finally {
      if (host !== t) host.dispose();
    }
    return this.#v!;
  }

  /** Sets the value read elsewhere (from a record it was copied into) and frees the tensor. */
  resolve(v: number): void {
    this.#v = v;
    this.#t?.dispose();
    this.#t = null;
  }

  /** Frees the tensor (a pending value can no longer be read). */
  dispose(): void {
    this.#t?.dispose();
    this.#t = null;
  }
}

/**
 * Choosing the device a run uses, and refusing work that cannot fit in device memory before it
 * starts: `resolveDevice('auto' | 'cuda' | 'cpu')`, `checkDeviceFits`, and the hint every
 * out-of-memory error of a run carries.
 */
import { describe, DeviceError, invalidArgument, KfacError, OutOfMemoryError } from '../errors.js';
import type { NativeCudaMemory } from '../native/addon.js';
import { backendChoice, cudaStatus, native } from '../native/loader.js';
import type { Device } from '../tensor/tensor.js';

export type DeviceRequest = Device | 'auto';

/** What out-of-memory errors of loading and training suggest. */
export const OOM_HINT = 'a smaller batch, --gradient-checkpointing, --dtype bfloat16';

export interface ResolvedDevice {
  readonly device: Device;
  /** Why this device: the GPU's name, or why 'auto' fell back to the CPU. */
  readonly reason: string;
}

const MiB = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

function cudaUsable(): boolean {
  try {
    return native().deviceAvailable('cuda');
  } catch {
    return false;
  }
}

/**
 * 'cuda': the GPU, or a DeviceError saying why it cannot be used. 'cpu': the CPU. 'auto': the GPU
 * when a device is usable, else the CPU with the reason (the backend's, e.g. no CUDA binary or
 * no device).
 */
export function resolveDevice(request: DeviceRequest): ResolvedDevice {
  if (request !== 'auto' && request !== 'cuda' && request !== 'cpu') invalidArgument('device', "'cuda', 'cpu' or 'auto'", describe(request));
  if (request === 'cpu') return { device: 'cpu', reason: 'cpu asked for' };
  if (cudaUsable()) {
    const dev = cudaStatus().info?.devices[0];
    return { device: 'cuda', reason: dev ? `${dev.name} (sm_${dev.computeCapability.replace('.', '')})` : 'a cuda device (CPU loopback)' };
  }
  const why = backendChoice()?.selected === 'cpu' ? backendChoice()!.reason : (cudaStatus().reason ?? 'no CUDA device');
  if (request === 'cuda')
    throw new DeviceError(`device: cuda is not usable in this process: ${why}`, {
      argument: 'device',
      expected: 'a loadable CUDA binary and a CUDA device',
      got: why,
      hint: 'run `npx kfac-peft doctor` for details, or use --device auto / cpu',
    });
  return { device: 'cpu', reason: `no usable GPU (${why})` };
}

/**
 * Device memory now (null on the CPU, and on the CPU loopback and the emulation, which have no
 * memory of their own — unless a test gave them a limit, when free/total are the limit's).
 */
export function deviceMemory(): NativeCudaMemory | null {
  const n = native();
  if (n.cuda) return n.cuda.memory();
  const m = n.deviceMemory('cuda');
  return m && m.free !== null && m.total !== null ? { ...m, free: m.free, total: m.total } : null;
}

/**
 * Throws an OutOfMemoryError when `bytes` for `what` exceed the device's free memory and the bytes
 * the caching allocator holds unused (read from `memory`, by default the device's; nothing is
 * checked without one).
 */
export function checkDeviceFits(what: string, bytes: number, memory: (Pick<NativeCudaMemory, 'free' | 'total'> & { cached?: number }) | null = deviceMemory()): void {
  // memory the caching allocator holds but no tensor uses is given back before an allocation fails
  const cached = memory?.cached ?? 0;
  if (memory === null || bytes <= memory.free + cached) return;
  const more = cached > 0 ? `, and ${cached} bytes (${MiB(cached)}) cached for reuse` : '';
  throw new OutOfMemoryError(`${what} needs at least ${bytes} bytes (${MiB(bytes)}) of device memory; ${memory.free} bytes (${MiB(memory.free)}) of ${MiB(memory.total)} are free${more}`, {
    argument: 'device',
    expected: `${bytes} bytes free`,
    got: `${memory.free} bytes free`,
    hint: OOM_HINT,
  });
}

/**
 * An OutOfMemoryError raised while doing `what` (a failed device allocation, whose message names
 * the bytes asked and the bytes free), rethrown naming `what` with the hint; other errors as they are.
 */
export function withOomContext(what: string, e: unknown): unknown {
  if (!(e instanceof OutOfMemoryError) || (e as KfacError).message.startsWith(`${what}:`)) return e;
  return new OutOfMemoryError(`${what}: ${e.message.split('\n')[0]}`, { argument: e.argument ?? 'device', hint: OOM_HINT, cause: e });
}

/**
 * The CUDA device: what the runtime reports and how much device memory is in use. There are
 * no ops here — the ops of linalg, ops, kfac and optim take tensors on either device
 * (`t.to('cuda')`, `Tensor.zeros(shape, { device: 'cuda' })`) and return results there, and so
 * do the nn ops (docs/OPS.md lists which op has which kernel).
 *
 * Tensors can live on 'cuda' when the CUDA backend is in use (backend 'cuda', or 'auto'
 * with a device): see setBackend() and `kfac-peft doctor`.
 */
import type { NativeCudaInfo, NativeCudaMemory } from '../native/addon.js';
import { cudaStatus, native } from '../native/loader.js';

export type { NativeCudaInfo as CudaInfo, NativeCudaMemory as CudaMemory } from '../native/addon.js';

/** True when tensors can be placed on 'cuda' in this process (loading the addon if needed). */
export function available(): boolean {
  try {
    return native().deviceAvailable('cuda');
  } catch {
    return false;
  }
}

/** What the CUDA runtime reports (null when the CUDA binary is not loaded). */
export function deviceInfo(): NativeCudaInfo | null {
  return cudaStatus().info;
}

/**
 * Device memory in bytes: the caching allocator's allocated / peak / reserved / cached bytes and
 * its counters, and the device's free/total (null when no cuda device is in use; on the test
 * devices without a GPU, free/total are 0 unless a limit was set).
 */
export function memory(): NativeCudaMemory | null {
  const n = native();
  if (n.cuda) return n.cuda.memory();
  const m = n.deviceMemory('cuda');
  return m ? { ...m, free: m.free ?? 0, total: m.total ?? 0 } : null;
}

/**
 * Gives the device memory that the caching allocator holds but no tensor uses (segments entirely
 * free) back to the device, as torch.cuda.empty_cache() does; returns the bytes given back (0
 * without a cuda device). Live tensors are not touched. Caching is on unless KFAC_CUDA_CACHING=0.
 */
export function emptyCache(): number {
  const n = native();
  if (n.cuda) return n.cuda.emptyCache();
  return n.emptyCache('cuda');
}

/**
 * Waits for all queued device work. An op on cuda tensors queues its kernels on the one stream
 * and returns; whatever reads a result back (`toArray()`, `to('cpu')`, an op returning a number)
 * waits for the work queued before it, so results are always those of every earlier op.
 */
export function synchronize(): void {
  if (available()) native().synchronize('cuda');
}

/**
 * Host waits on the device's stream since the process started — one per result read back and per
 * `synchronize()` — or null without the CUDA binary (the CPU loopback has no stream). Each wait
 * empties the device's queue, so a training step should make few: `bench train-step` reports them
 * per step.
 */
export function synchronizations(): number | null {
  const n = native();
  return n.cuda ? n.cuda.synchronizations() : null;
}

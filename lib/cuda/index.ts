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

/** Device memory in bytes (null when the CUDA backend is not in use). */
export function memory(): NativeCudaMemory | null {
  const c = native().cuda;
  return c ? c.memory() : null;
}

/** Waits for all queued device work (every op already returns after its work is done). */
export function synchronize(): void {
  if (available()) native().synchronize('cuda');
}

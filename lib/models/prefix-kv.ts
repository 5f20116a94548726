/**
 * Prefix keys and values in attention (prefix tuning, lib/peft/prefix.ts): the AttentionPrefix a
 * layer attends before its own keys, the joins and splits along time that put it in front (and
 * take its gradient off), and the decoding cache that starts with it. Shared by SdpaCore
 * (common.ts) and T5's attention (t5-layers.ts).
 */
import { invalidArgument } from '../errors.js';
import * as F from '../nn/functional.js';
import { scale } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import type { KVCache } from './common.js';

/**
 * Learned keys and values attended before a layer's own (prefix tuning, lib/peft): n positions,
 * never masked, not rotated (they stand for keys already in a cache), [B, n, Hkv, D] each. A
 * prefix gives them either as tensors on the attention's device (`kvInto` / `backwardFrom`: the
 * whole join runs in native ops, on a GPU too) or as host arrays (`kv` / `backward`: CPU only).
 */
export interface AttentionPrefix {
  readonly length: number;
  /** Writes this forward's prefix keys and values for a batch of B into k and v [B, n, Hkv, D]. */
  kvInto?(B: number, k: Tensor, v: Tensor): void;
  /** Takes the gradients [B, n, Hkv, D] of this forward's prefix keys and values (read during the call). */
  backwardFrom?(dk: Tensor, dv: Tensor): void;
  /** This forward's prefix keys and values for a batch of B, as host arrays. */
  kv?(B: number): { k: Float32Array; v: Float32Array };
  /** Adds the gradients of this forward's prefix keys and values, as host arrays. */
  backward?(dk: Float32Array, dv: Float32Array): void;
}

/** Fills k and v [B, n, Hkv, D] with a prefix's keys and values of a batch of B (kvInto, else the host arrays of kv). */
export function prefixKvInto(p: AttentionPrefix, B: number, k: Tensor, v: Tensor): void {
  if (p.kvInto) p.kvInto(B, k, v);
  else if (p.kv) {
    const host = p.kv(B);
    k.set(host.k);
    v.set(host.v);
  } else invalidArgument('prefix', 'kvInto or kv', 'neither');
}

/** [pre; x] along time into out [B, n + T, H, D], from pre [B, n, H, D] and x [B, T, H, D] (native ops). */
export function joinTime(pre: Tensor, x: Tensor, out: Tensor): Tensor {
  F.kvCacheWrite(pre, out, 0);
  F.kvCacheWrite(x, out, pre.shape[1]!);
  return out;
}

/** Splits full [B, n + T, H, D] along time into its first n positions `pre` [B, n, H, D] and the rest `own` [B, T, H, D]. */
export function splitTime(full: Tensor, pre: Tensor, own: Tensor): void {
  F.timeSlice(full, pre, 0);
  F.timeSlice(full, own, pre.shape[1]!);
}

/**
 * Starts a decoding cache with prefix tuning's keys and values (PEFT's past_key_values): the first
 * n positions of layer l are prefixes[l]'s for the cache's B sequences, and cache.length becomes n.
 * On an error, `owner` (the cache, or what holds it) is disposed before the error goes on.
 */
export function fillPrefixCache(cache: KVCache, prefixes: readonly (AttentionPrefix | null)[], owner: Disposable = cache): void {
  try {
    const n = prefixes[0]?.length ?? 0;
    if (n === 0) return;
    cache.reserve(n);
    prefixes.forEach((p, l) => {
      if (p?.length !== n) invalidArgument('prefix', `a prefix of ${n} positions in every layer`, `none or another length in layer ${l}`);
      const layer = cache.layers[l]!;
      const [B, , H, D] = layer.k.shape as [number, number, number, number];
      using k = Tensor.empty([B, n, H, D], { device: layer.k.device }), v = Tensor.empty([B, n, H, D], { device: layer.v.device });
      prefixKvInto(p, B, k, v);
      if (layer.k.dtype === 'bfloat16') {
        // a bf16 cache (bf16 activations): the float32 prefix rounded once, as the training join does
        using kb = scale(k, 1, Tensor.empty([B, n, H, D], { device: layer.k.device, dtype: 'bfloat16' }));
        using vb = scale(v, 1, Tensor.empty([B, n, H, D], { device: layer.v.device, dtype: 'bfloat16' }));
        F.kvCacheWrite(kb, layer.k, 0);
        F.kvCacheWrite(vb, layer.v, 0);
      } else {
        F.kvCacheWrite(k, layer.k, 0);
        F.kvCacheWrite(v, layer.v, 0);
      }
    });
    cache.length = n;
  } catch (e) {
    owner[Symbol.dispose]();
    throw e;
  }
}

/** Hands a prefix the gradients [B, n, Hkv, D] of its keys and values (backwardFrom, else backward on host arrays). */
export function prefixBackwardFrom(p: AttentionPrefix, dk: Tensor, dv: Tensor): void {
  if (p.backwardFrom) p.backwardFrom(dk, dv);
  else if (p.backward) p.backward(dk.toArray(), dv.toArray());
}

/** The prefix an attention holds and the modules it registered there (SdpaCore, T5Attention). */
export class PrefixSlot {
  prefix: AttentionPrefix | null = null;
  #names: string[] = [];

  /** Attaches `p`; `register` adds each of its modules to the attention. */
  attach(p: AttentionPrefix, modules: Readonly<Record<string, Module>>, register: (name: string, m: Module) => void): void {
    if (this.prefix) invalidArgument('prefix', 'an attention without a prefix', 'one that already has one');
    for (const [n, m] of Object.entries(modules)) register(n, m);
    this.prefix = p;
    this.#names = Object.keys(modules);
  }

  /** Detaches the prefix; `remove` unregisters its modules (they are not disposed). */
  detach(remove: (name: string) => void): void {
    for (const n of this.#names) remove(n);
    this.prefix = null;
    this.#names = [];
  }
}

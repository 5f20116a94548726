/**
 * Seeded randomness shared by generation, data order and the demo: one small generator
 * (mulberry32, separate streams by salt), a Fisher–Yates shuffle, and a permutation of indices.
 */

/** mulberry32: a small seeded generator of uniform numbers in [0, 1); `salt` separates streams that share a seed. */
export function mulberry32(seed: number, salt = 0x9e3779b9): () => number {
  let a = (seed >>> 0) ^ salt;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The demo's stream of the shared generator: seeded uniform numbers in [0, 1). */
export function rng(seed: number): () => number {
  return mulberry32(seed, 0x2545f491);
}

/** A seeded Fisher–Yates shuffle (a new array), drawing from rng(seed). */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  const r = rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A deterministic permutation of [0, n) from a seed (Fisher–Yates on a splitmix-style generator). */
export function shuffledIndices(n: number, seed: number): Int32Array {
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  let s = BigInt.asUintN(64, BigInt(seed) + 0x9e3779b97f4a7c15n);
  const next = () => {
    s = BigInt.asUintN(64, s + 0x9e3779b97f4a7c15n);
    let z = s;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    z = z ^ (z >> 31n);
    return Number(z >> 11n) / 2 ** 53;
  };
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
  return idx;
}

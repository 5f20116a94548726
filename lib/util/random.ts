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

/** Timing helpers: warm-up, then the median of repeated runs. */

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? (s[(n - 1) / 2] as number) : ((s[n / 2 - 1] as number) + (s[n / 2] as number)) / 2;
}

/**
 * Median milliseconds of fn over `repeats` runs after `warmup` runs. `sync` waits for queued
 * device work (cuda ops return once their work is queued, docs/CUDA.md#stream-order): it runs
 * after the warm-up and inside every timed run, so a run's time is its device time.
 */
export function timeMs(fn: () => void, repeats: number, warmup = 2, sync?: () => void): number {
  for (let i = 0; i < warmup; i++) fn();
  sync?.();
  const ts: number[] = [];
  for (let i = 0; i < Math.max(1, repeats); i++) {
    const t0 = process.hrtime.bigint();
    fn();
    sync?.();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ts);
}

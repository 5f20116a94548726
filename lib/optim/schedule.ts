/** Learning-rate schedules: functions of the step index (0 for the first update). */
import { invalidArgument, describe } from '../errors.js';

export type Schedule = (step: number) => number;

function checkPositiveInt(v: number, name: string): void {
  if (!Number.isInteger(v) || v < 0) invalidArgument(name, 'a non-negative integer', describe(v));
}

/** lr for every step. */
export function constant(lr: number): Schedule {
  return () => lr;
}

/** Linear warm-up from 0 over `warmup` steps, then constant. */
export function warmupConstant(lr: number, warmup: number): Schedule {
  checkPositiveInt(warmup, 'warmup');
  return (s) => (warmup > 0 && s < warmup ? (lr * (s + 1)) / warmup : lr);
}

/** Linear warm-up over `warmup` steps, then `decay(t)`·lr with t going from 0 to 1 at `total` steps. */
function warmupThen(lr: number, warmup: number, total: number, decay: (t: number) => number): Schedule {
  checkPositiveInt(warmup, 'warmup');
  checkPositiveInt(total, 'total');
  return (s) => {
    if (warmup > 0 && s < warmup) return (lr * (s + 1)) / warmup;
    return lr * decay(total > warmup ? Math.min(1, (s - warmup) / (total - warmup)) : 1);
  };
}

/** Linear warm-up, then linear decay to `finalFraction`·lr at `total` steps. */
export function warmupLinear(lr: number, warmup: number, total: number, finalFraction = 0): Schedule {
  return warmupThen(lr, warmup, total, (t) => 1 - (1 - finalFraction) * t);
}

/** Linear warm-up, then cosine decay to `finalFraction`·lr at `total` steps. */
export function warmupCosine(lr: number, warmup: number, total: number, finalFraction = 0): Schedule {
  return warmupThen(lr, warmup, total, (t) => finalFraction + (1 - finalFraction) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

/**
 * `bench step --profile`: wall time per op family, measured by wrapping every function of the
 * native addon in a timer for the duration of a run (the wrappers are removed afterwards).
 * Time outside native calls (JavaScript, tensor bookkeeping) is reported as 'other'.
 *
 * On a device the calls return once their work is queued, so a call's wall time is its launch:
 * given `sync` (cuda: wait for the stream), every call waits for its own work inside its timer,
 * and the device time lands in the family that queued it (the waits slow the profiled round; its
 * shares, not its total, are what it is for).
 */
import { native } from '../native/loader.js';

const FAMILIES: [RegExp, string][] = [
  [/^(matmul|linearForward|linearBackward)$/, 'gemm (linear, matmul)'],
  [/^(attention|rope|kvCache)/, 'attention'],
  [/^(layerNorm|rmsNorm)/, 'norm'],
  [/^(gelu|silu|swiglu)/, 'activation'],
  [/^dropout/, 'dropout'],
  [/^embedding/, 'embedding'],
  [/^crossEntropy$/, 'loss'],
  [/^(adamwStep|sgdStep)$/, 'optimizer update'],
  [/^(factorUpdate|dampedInverse|precondition|piDamping|clipNewtonStep|eigh)/, 'k-fac (factors, inverses, clip)'],
  [/^(fill|copy|add|scale|axpy|transpose|sum|sumSquares|norm|dot)$/, 'elementwise, reductions'],
];

export function familyOf(fn: string): string {
  for (const [re, name] of FAMILIES) if (re.test(fn)) return name;
  return 'other native';
}

export class OpProfile {
  readonly ms = new Map<string, number>();
  readonly calls = new Map<string, number>();
  #restore: (() => void) | undefined;

  constructor(readonly sync?: () => void) {}

  /** Starts timing every native call. */
  start(): void {
    if (this.#restore) return;
    const addon = native() as unknown as Record<string, unknown>;
    const saved: [string, unknown][] = [];
    for (const [key, value] of Object.entries(addon)) {
      // the stream's wait is not an op: with `sync` it is what each call does inside its timer
      if (typeof value !== 'function' || /^[A-Z]/.test(key) || key === 'info' || key === 'synchronize' || key.startsWith('set')) continue;
      const fn = value as (...a: unknown[]) => unknown;
      const family = familyOf(key);
      saved.push([key, value]);
      const sync = this.sync;
      addon[key] = (...args: unknown[]) => {
        const t0 = process.hrtime.bigint();
        try {
          const r = fn(...args);
          sync?.();
          return r;
        } finally {
          this.ms.set(family, (this.ms.get(family) ?? 0) + Number(process.hrtime.bigint() - t0) / 1e6);
          this.calls.set(family, (this.calls.get(family) ?? 0) + 1);
        }
      };
    }
    this.#restore = () => {
      for (const [k, v] of saved) addon[k] = v;
    };
  }

  stop(): void {
    this.#restore?.();
    this.#restore = undefined;
  }

  /** Rows of (family, ms per step, share of the step), largest first; `other` is the rest of the wall time. */
  rows(steps: number, wallMsPerStep: number): { family: string; msPerStep: number; share: number; callsPerStep: number }[] {
    const rows = [...this.ms.entries()].map(([family, ms]) => ({ family, msPerStep: ms / steps, share: ms / steps / wallMsPerStep, callsPerStep: (this.calls.get(family) ?? 0) / steps }));
    const native = rows.reduce((a, r) => a + r.msPerStep, 0);
    rows.push({ family: 'other (JavaScript, allocation)', msPerStep: Math.max(0, wallMsPerStep - native), share: Math.max(0, wallMsPerStep - native) / wallMsPerStep, callsPerStep: 0 });
    return rows.sort((a, b) => b.msPerStep - a.msPerStep);
  }
}

// Types of parity.mjs for the vitest wrapper.
export interface ParityCase {
  name: string;
  /** The ops of the op list (native/core/dispatch.h) this case covers. */
  ops: string[];
  run(device: 'cpu' | 'cuda'): void;
}
export declare const cases: ParityCase[];
export declare const deviceCases: { name: string; run(): void }[];
export declare const cpuOnly: string[];
export declare function checkCoverage(): void;
export declare function enableLoopback(): void;
export declare function gpuStatus(): { ok: boolean; reason: string };

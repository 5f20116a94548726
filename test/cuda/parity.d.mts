// Types of parity.mjs for the vitest wrapper.
export interface ParityCheck {
  name: string;
  run(): void;
}
export declare const checks: ParityCheck[];
export declare function gpuStatus(): { ok: boolean; reason: string };
export declare function useApi(api?: unknown, isLoopback?: boolean): void;

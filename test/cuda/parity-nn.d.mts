// Types of parity-nn.mjs for the vitest suites.
import type { ParityCase } from './parity.mjs';
export declare const nnCases: ParityCase[];

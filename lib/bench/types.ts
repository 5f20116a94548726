/** Shared types of the microbenchmarks behind `kfac-peft bench`. */

export interface BenchRow {
  /** Bench case, e.g. 'gemm'. */
  case: string;
  /** What was measured, e.g. '512x512x512 NN'. */
  shape: string;
  threads: number;
  /** Median wall time of one call, milliseconds. */
  ms: number;
  gflops?: number;
  gbps?: number;
  /** The peer that was timed in the same run (e.g. 'OpenBLAS 0.3.31 SkylakeX'). */
  peer?: string;
  peerMs?: number;
  peerGflops?: number;
  /** Peer time / our time (> 1: we are faster). */
  ratio?: number;
  /** 'cuda' for rows of `--backend cuda` (threads is then 0). */
  backend?: 'cpu' | 'cuda';
  /** Achieved GB/s or GFLOP/s as a fraction of the ceiling measured in the same run. */
  ofCeiling?: number;
  /** Free-form extras (accuracy, fallbacks, …). */
  note?: string;
}

export interface BenchOptions {
  /** Problem sizes (meaning per case); undefined: the case's defaults. */
  sizes: number[] | undefined;
  /** Thread counts to run; undefined: 1 and all threads. */
  threads: number[] | undefined;
  /** Timed repeats per measurement (after warm-up). */
  repeats: number;
  /** Alternating rounds of ours and the peer per measurement (cases that support it; default 1). */
  rounds?: number;
  /** Whether to time the numpy/scipy peer when it is importable. */
  peer: boolean;
  /** Keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for the peer instead of letting OpenBLAS pick its best kernels. */
  peerKeepEnv: boolean;
  /** Progress line on stderr. */
  progress(message: string): void;
}

export interface BenchCase {
  name: string;
  description: string;
  run(options: BenchOptions): Promise<BenchRow[]>;
}

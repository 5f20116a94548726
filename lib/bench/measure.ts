/**
 * The one measuring helper of the bench cases: times our side, asks the peer worker for its
 * median on the same problem in the same run, and returns the row with the ratio.
 */
import type { PeerPool } from './peer.js';
import { median, timeMs } from './timing.js';
import type { BenchRow } from './types.js';

export interface MeasureCase {
  case: string;
  shape: string;
  threads: number;
  /** Timed repeats (after `warmup` untimed runs). */
  repeats: number;
  warmup?: number;
  /** Floating-point operations of one call: adds GFLOP/s for both sides. */
  flops?: number;
  note?: string;
  /**
   * Alternating rounds (default 1): ours, then the peer, `rounds` times, each with the full
   * repeats; times are the medians over rounds and the ratio the median of the per-round
   * ratios, so both sides of each ratio saw about the same machine load.
   */
  rounds?: number;
  /** How the peer is named in the row, given the worker's BLAS name. */
  peerLabel?: (blas: string) => string;
}

export interface PeerRequest {
  pool: PeerPool;
  /** The request of bench/peer.py (op and sizes); repeats is added. */
  req: Record<string, unknown>;
}

/** Our median ms of `ours` and, when a peer worker runs, its median on `peer.req`. */
export async function measure(c: MeasureCase, ours: () => void, peer?: PeerRequest): Promise<BenchRow> {
  const worker = peer ? await peer.pool.get(c.threads) : undefined;
  const mine: number[] = [];
  const theirs: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < Math.max(1, c.rounds ?? 1); r++) {
    const ms = timeMs(ours, c.repeats, c.warmup ?? 2);
    mine.push(ms);
    const peerMs = worker && peer ? await worker.ms({ repeats: c.repeats, ...peer.req }) : undefined;
    if (peerMs !== undefined) {
      theirs.push(peerMs);
      ratios.push(peerMs / ms);
    }
  }
  const ms = median(mine);
  const row: BenchRow = { case: c.case, shape: c.shape, threads: c.threads, ms };
  if (c.flops !== undefined) row.gflops = c.flops / ms / 1e6;
  if (c.note !== undefined) row.note = c.note;
  if (worker && theirs.length) {
    const peerMs = median(theirs);
    row.peer = c.peerLabel ? c.peerLabel(worker.name) : worker.name;
    row.peerMs = peerMs;
    if (c.flops !== undefined) row.peerGflops = c.flops / peerMs / 1e6;
    row.ratio = median(ratios);
  }
  return row;
}

/** Evaluation metrics: accuracy, F1, Matthews correlation, Pearson, Spearman, perplexity. */
import { describe, invalidArgument, ShapeError } from '../errors.js';

function sameLength(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) throw new ShapeError(`${what}: expected predictions and labels of the same length, got ${a.length} and ${b.length}`, { argument: 'labels', expected: String(a.length), got: String(b.length) });
  if (a.length === 0) invalidArgument('predictions', 'at least one value', 'none');
}

/** Fraction of predictions equal to the labels. */
export function accuracy(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  sameLength(pred, labels, 'accuracy');
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) ok++;
  return ok / pred.length;
}

/** Binary F1 of the `positive` class (0 when there are no true positives). */
export function f1(pred: ArrayLike<number>, labels: ArrayLike<number>, positive = 1): number {
  sameLength(pred, labels, 'f1');
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i] === positive;
    const l = labels[i] === positive;
    if (p && l) tp++;
    else if (p) fp++;
    else if (l) fn++;
  }
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/** Matthews correlation coefficient for any number of classes (Gorodkin's R_K); 0 when undefined. */
export function matthews(pred: ArrayLike<number>, labels: ArrayLike<number>): number {
  sameLength(pred, labels, 'matthews');
  const classes = [...new Set([...Array.from(pred), ...Array.from(labels)])];
  const idx = new Map(classes.map((c, i) => [c, i]));
  const K = classes.length;
  const C = new Float64Array(K * K); // rows: truth, columns: prediction
  for (let i = 0; i < pred.length; i++) C[idx.get(labels[i]!)! * K + idx.get(pred[i]!)!]! += 1;
  const t = new Float64Array(K);
  const p = new Float64Array(K);
  let c = 0;
  for (let i = 0; i < K; i++)
    for (let j = 0; j < K; j++) {
      t[i]! += C[i * K + j]!;
      p[j]! += C[i * K + j]!;
      if (i === j) c += C[i * K + j]!;
    }
  const s = pred.length;
  let tp = 0;
  let pp = 0;
  let tt = 0;
  for (let k = 0; k < K; k++) {
    tp += t[k]! * p[k]!;
    pp += p[k]! * p[k]!;
    tt += t[k]! * t[k]!;
  }
  const den = Math.sqrt((s * s - pp) * (s * s - tt));
  return den === 0 ? 0 : (c * s - tp) / den;
}

/** Pearson correlation (NaN when either side is constant). */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  sameLength(x, y, 'pearson');
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const a = x[i]! - mx;
    const b = y[i]! - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** Ranks from 1, ties sharing their average rank. */
export function ranks(x: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const r = new Float64Array(x.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && x[order[j + 1]!] === x[order[i]!]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[order[k]!] = avg;
    i = j + 1;
  }
  return r;
}

/** Spearman rank correlation (Pearson of the average ranks). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  sameLength(x, y, 'spearman');
  return pearson(ranks(x), ranks(y));
}

/** exp(mean token negative log-likelihood). */
export function perplexity(meanLoss: number): number {
  if (!Number.isFinite(meanLoss)) invalidArgument('meanLoss', 'a finite mean loss', describe(meanLoss));
  return Math.exp(meanLoss);
}

/** Index of the largest value of each row of a [rows, cols] array. */
export function argmaxRows(logits: ArrayLike<number>, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (logits[r * cols + c]! > logits[r * cols + best]!) best = c;
    out[r] = best;
  }
  return out;
}

export type MetricName = 'accuracy' | 'f1' | 'matthews' | 'pearson' | 'spearman';

export const METRICS: Record<MetricName, (p: ArrayLike<number>, l: ArrayLike<number>) => number> = {
  accuracy,
  f1: (p, l) => f1(p, l),
  matthews,
  pearson,
  spearman,
};

/**
 * Generation for encoder-decoder models (T5): the encoder runs once; the decoder runs one token
 * per step over a KV cache of its self-attention and the cross-attention keys/values computed once
 * from the encoder output. Greedy (batched, rows that finish are padded as transformers does) and
 * beam search with transformers' scoring: accumulated log-probabilities, 2·numBeams candidates per
 * step, finished hypotheses scored by sum / length^lengthPenalty, and its early-stopping rule.
 * Sampling (temperature, top-k, top-p, seeded) goes through the batched greedy loop with the
 * decoder-only sampler (generate.ts makeSampler): one generator, rows drawn in order each step.
 */
import { describe, invalidArgument } from '../errors.js';
import { checkFinite, checkInteger } from '../util/validate.js';
import { makeSampler, type Sampler, type SamplingOptions } from './generate.js';
import { hostValues, type T5Model } from './t5.js';

export interface Seq2SeqGenerateOptions extends SamplingOptions {
  /** Tokens to generate after the decoder start token. */
  maxNewTokens: number;
  /** Beams (default 1: greedy). */
  numBeams?: number;
  /** Exponent of the length normalisation of finished beams (default 1, as transformers). */
  lengthPenalty?: number;
  /** transformers' early_stopping: false (default, its heuristic), true, or 'never'. */
  earlyStopping?: boolean | 'never';
  /** End-of-sequence id (default: the model's eos_token_id); null generates maxNewTokens. */
  eosTokenId?: number | null;
}

function checkOptions(model: T5Model, o: Seq2SeqGenerateOptions): { maxNew: number; beams: number; lp: number; early: boolean | 'never'; eos: number | null; sampler: Sampler } {
  if (o === null || typeof o !== 'object') invalidArgument('options', 'an object with maxNewTokens', describe(o));
  const maxNew = checkInteger(o.maxNewTokens, 'maxNewTokens', 0, 2 ** 20);
  const beams = o.numBeams === undefined ? 1 : checkInteger(o.numBeams, 'numBeams', 1, 256);
  const lp = o.lengthPenalty === undefined ? 1 : checkFinite(o.lengthPenalty, 'lengthPenalty');
  const early = o.earlyStopping ?? false;
  if (early !== true && early !== false && early !== 'never') invalidArgument('earlyStopping', "true, false or 'never'", describe(early));
  const eos = o.eosTokenId === undefined ? model.config.eosTokenId : o.eosTokenId === null ? null : checkInteger(o.eosTokenId, 'eosTokenId', 0, model.config.vocabSize - 1);
  const sampler = makeSampler(o);
  if (!sampler.greedy && beams > 1) invalidArgument('numBeams', '1 when sampling (temperature above 0): beam search is deterministic', `${beams}`);
  return { maxNew, beams, lp, early, eos, sampler };
}

function logSoftmaxRow(x: Float32Array, off: number, V: number, out: Float64Array, outOff: number, add: number): void {
  let mx = -Infinity;
  for (let i = 0; i < V; i++) mx = Math.max(mx, x[off + i]!);
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(x[off + i]! - mx);
  const lz = mx + Math.log(s);
  for (let i = 0; i < V; i++) out[outOff + i] = x[off + i]! - lz + add;
}

/**
 * Greedy decoding, or sampling with a temperature above 0, of a batch of sources [B, Ts] (with an
 * optional padding mask): returns each row's new ids (the decoder start token excluded). A row
 * that emits eos keeps it and is padded with the pad id while the others continue; decoding stops
 * when every row has finished.
 */
export function greedySeq2Seq(model: T5Model, inputIds: Int32Array, shape: readonly [number, number], attentionMask: ArrayLike<number> | null, options: Seq2SeqGenerateOptions): Int32Array[] {
  const { maxNew, eos, sampler } = checkOptions(model, options);
  const [B, Ts] = shape;
  const rows = Array.from({ length: B }, () => [] as number[]);
  if (maxNew === 0) return rows.map(() => new Int32Array(0));
  const wasTraining = model.training;
  model.eval();
  const state = model.startDecoding(inputIds, B, Ts, attentionMask, maxNew);
  try {
    const c = model.config;
    const done = new Array<boolean>(B).fill(false);
    let ids = new Int32Array(B).fill(c.decoderStartTokenId);
    for (let step = 0; step < maxNew; step++) {
      const logits = hostValues(model.decodeStep(ids, 1, state));
      const V = c.vocabSize;
      ids = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        if (done[b]) {
          rows[b]!.push(c.padTokenId);
          ids[b] = c.padTokenId;
          continue;
        }
        const t = sampler.pick(logits, b * V, V);
        rows[b]!.push(t);
        ids[b] = t;
        if (t === eos) done[b] = true;
      }
      if (done.every(Boolean)) break;
    }
    return rows.map((r) => Int32Array.from(r));
  } finally {
    state.dispose();
    model.train(wasTraining);
  }
}

interface Beam {
  seq: number[];
  score: number;
}

/** Beam search (greedy when numBeams is 1) for one source sequence; returns the best hypothesis's new ids. */
export function generateSeq2Seq(model: T5Model, sourceIds: Int32Array | readonly number[], options: Seq2SeqGenerateOptions): Int32Array {
  const src = sourceIds instanceof Int32Array ? sourceIds : Array.isArray(sourceIds) ? Int32Array.from(sourceIds as number[]) : invalidArgument('sourceIds', 'an Int32Array or an array of ids', describe(sourceIds));
  if (src.length === 0) invalidArgument('sourceIds', 'at least one token', 'an empty source');
  const { maxNew, beams: k, lp, early, eos } = checkOptions(model, options);
  if (k === 1) return greedySeq2Seq(model, src, [1, src.length], null, options)[0]!;
  if (maxNew === 0) return new Int32Array(0);
  const c = model.config;
  const V = c.vocabSize;
  const K = 2 * k;
  const maxLen = 1 + maxNew; // decoder length, start token included
  const wasTraining = model.training;
  model.eval();
  const rep = new Int32Array(k * src.length);
  for (let b = 0; b < k; b++) rep.set(src, b * src.length);
  const state = model.startDecoding(rep, k, src.length, null, maxNew);
  try {
    let running: Beam[] = Array.from({ length: k }, (_, b) => ({ seq: [c.decoderStartTokenId], score: b === 0 ? 0 : -1e9 }));
    let finished: (Beam & { real: boolean })[] = Array.from({ length: k }, () => ({ seq: [], score: -1e9, real: false }));
    let unsatisfied = true;
    let curLen = 1;
    const lp64 = new Float64Array(k * V);
    let next = new Int32Array(k).fill(c.decoderStartTokenId);
    for (;;) {
      const logits = hostValues(model.decodeStep(next, 1, state));
      for (let b = 0; b < k; b++) logSoftmaxRow(logits, b * V, V, lp64, b * V, running[b]!.score);
      // Top K candidates over all beams (ties: the lower flat index first).
      const order: number[] = [];
      for (let i = 0; i < k * V; i++) {
        if (order.length === K && lp64[i]! <= lp64[order[K - 1]!]!) continue;
        let j = order.length < K ? order.length : K - 1;
        order[j] = i;
        while (j > 0 && lp64[order[j - 1]!]! < lp64[i]!) {
          order[j] = order[j - 1]!;
          order[--j] = i;
        }
      }
      const cands = order.map((i, rank) => {
        const beam = Math.floor(i / V);
        const tok = i % V;
        const hits = tok === eos || curLen + 1 >= maxLen;
        return { beam, tok, score: lp64[i]!, hits, rank };
      });
      // Next running beams: the best k candidates that did not finish.
      const chosen = stableTopK(cands, k, (x) => x.score + (x.hits ? -1e9 : 0));
      // Finished hypotheses: candidates among the top k that hit eos or the length limit.
      const len = (curLen + 1 - 1) ** lp;
      const fresh = cands.map((x) => {
        let s = x.score / len;
        if (early === true && finished.every((f) => f.real)) s += -1e9;
        if (!unsatisfied) s += -1e9;
        const did = x.hits && x.rank < k;
        if (!did) s += -1e9;
        return { seq: [...running[x.beam]!.seq, x.tok], score: s, real: did };
      });
      finished = stableTopK([...finished, ...fresh], k, (x) => x.score);
      const allHit = cands.every((x) => x.hits);
      running = chosen.map((x) => ({ seq: [...running[x.beam]!.seq, x.tok], score: x.score + (x.hits ? -1e9 : 0) }));
      curLen++;
      // transformers' heuristic: stop once no running beam can beat the worst finished one.
      const hyp = early === 'never' && lp > 0 ? maxLen - 1 : curLen - 1;
      const bestRunning = running[0]!.score / hyp ** lp;
      const worst = Math.min(...finished.map((f) => f.score));
      unsatisfied = unsatisfied && finished.some((f) => bestRunning > (f.real ? worst : -1e9));
      const open = !(finished.every((f) => f.real) && early === true);
      if (!(unsatisfied && open && !allHit)) break;
      state.reorder(Int32Array.from(chosen, (x) => x.beam));
      next = Int32Array.from(chosen, (x) => x.tok);
    }
    return Int32Array.from(finished[0]!.seq.slice(1));
  } finally {
    state.dispose();
    model.train(wasTraining);
  }
}

/** The n items of largest key, in descending key order (ties keep the input order, as torch.topk on CPU does for these sizes). */
function stableTopK<T>(xs: readonly T[], n: number, key: (x: T) => number): T[] {
  return xs
    .map((x, i) => ({ x, i, k: key(x) }))
    .sort((a, b) => b.k - a.k || a.i - b.i)
    .slice(0, n)
    .map((e) => e.x);
}

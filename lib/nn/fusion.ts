/**
 * Switches of the fused paths. Each fused path computes what its unfused reference computes
 * (the tests hold them together) with fewer passes over memory; a switch turned off runs the
 * reference. The defaults are on only where `kfac-peft bench step` showed the fused path
 * faster (BENCHMARKS.md, "The CPU at its limit"). KFAC_FUSE sets them when the library loads:
 * `0` (all off), `1` (all on), or a comma list of the names to turn on (the rest off).
 *
 * - lora: a LoRA branch's lora_B adds s·(x·Aᵀ)·Bᵀ straight into the base output (the GEMM with
 *   β = 1), and its backward scales inside the GEMMs instead of forming s·g first (formed only
 *   when K-FAC reads lora_B's output gradient). Runs on every device (it is matmul).
 * - addNorm: a residual add and the norm that reads its result are one kernel (the norm's, with
 *   `add: { residual, sum }`): the sum is stored and normalised in one pass over the rows
 *   instead of written by the add and read back by the norm — LLaMA's x + attention before
 *   post_attention_layernorm, GPT-2's before ln_2, BERT's two post-LayerNorms. The same values
 *   bit for bit (the sum is rounded to its storage once either way). Runs on every device. The
 *   add that ends a pre-norm block stays an add: the next block, the unit of gradient
 *   checkpointing, starts from its result.
 */
import { describe, invalidArgument } from '../errors.js';

export interface Fusions {
  lora: boolean;
  addNorm: boolean;
}

const NAMES: readonly (keyof Fusions)[] = ['lora', 'addNorm'];
const DEFAULTS: Fusions = { lora: true, addNorm: true };

function fromEnv(v: string | undefined): Fusions {
  if (v === undefined || v === '') return { ...DEFAULTS };
  if (v === '0' || v === '1') return Object.fromEntries(NAMES.map((n) => [n, v === '1'])) as unknown as Fusions;
  const on = new Set(v.split(',').map((x) => x.trim()));
  return Object.fromEntries(NAMES.map((n) => [n, on.has(n)])) as unknown as Fusions;
}

const current: Fusions = fromEnv(process.env['KFAC_FUSE']);

/** The switches now in force. */
export function fusions(): Readonly<Fusions> {
  return { ...current };
}

/** Turns fused paths on or off; returns the switches now in force. */
export function setFusions(changes: Partial<Fusions>): Readonly<Fusions> {
  if (changes === null || typeof changes !== 'object') invalidArgument('changes', 'an object of fusion switches', describe(changes));
  for (const [k, v] of Object.entries(changes)) {
    if (!(NAMES as readonly string[]).includes(k)) invalidArgument(k, `a fusion name (${NAMES.join(', ')})`, describe(k));
    if (typeof v !== 'boolean') invalidArgument(k, 'true or false', describe(v));
    current[k as keyof Fusions] = v;
  }
  return fusions();
}

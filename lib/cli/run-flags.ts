/**
 * The options of a fine-tuning run, one table shared by `train`, `eval` and `compare` (whose
 * `--runs` entries override them as `key=value`): flag name → RunConfig field, kind and range.
 * Every value is checked here, before a model or a file is touched.
 */
import { DEFAULTS, defaultTrustRatio, type OptimizerName, type RunConfig, withDefaults } from '../train/run.js';
import { FormatError } from '../errors.js';
import { UsageError } from './args.js';

type Kind =
  | { t: 'string' }
  | { t: 'number'; min: number; max: number; open?: 'min' | 'max' | 'both' }
  | { t: 'int'; min: number }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'list' }
  | { t: 'number-or-off'; min: number; max: number }
  | { t: 'flag' };

type PeftName = NonNullable<RunConfig['peft']>;

interface Spec {
  key: keyof RunConfig;
  kind: Kind;
  help: string;
  /** The optimizers that read the option (absent: every one); given to another, it is a usage error. */
  optimizers?: readonly OptimizerName[];
  /** The PEFT methods that read it (absent: every one). */
  peft?: readonly PeftName[];
}

const KFAC: readonly OptimizerName[] = ['kfac'];
/** K-FAC and the Kronecker-factored peers (their factor EMA, refresh interval and trust-ratio clip). */
const KRONECKER: readonly OptimizerName[] = ['kfac', 'shampoo', 'soap'];

const num = (min: number, max: number, open?: 'min' | 'max' | 'both'): Kind => ({ t: 'number', min, max, ...(open ? { open } : {}) });
const int = (min: number): Kind => ({ t: 'int', min });

export const RUN_FLAGS: Record<string, Spec> = {
  model: { key: 'model', kind: { t: 'string' }, help: 'Hugging Face model folder or llama2.c .bin checkpoint' },
  tokenizer: { key: 'tokenizer', kind: { t: 'string' }, help: 'tokenizer.json or llama2.c tokenizer .bin (default: beside the model)' },
  data: { key: 'data', kind: { t: 'string' }, help: 'GLUE folder, folder with task.json, .tsv/.csv/.jsonl, or .txt for causal LM' },
  dev: { key: 'dev', kind: { t: 'string' }, help: 'dev split file (default: dev.* in the data folder, else 10% held out)' },
  'text-column': { key: 'textColumn', kind: { t: 'string' }, help: 'column of the text (default sentence / text)' },
  'text-pair-column': { key: 'textPairColumn', kind: { t: 'string' }, help: 'column of the second text' },
  'label-column': { key: 'labelColumn', kind: { t: 'string' }, help: 'column of the label (default label)' },
  'train-limit': { key: 'trainLimit', kind: int(1), help: 'use at most N training examples / documents' },
  'eval-limit': { key: 'evalLimit', kind: int(1), help: 'use at most N dev examples (causal LM: blocks)' },
  peft: { key: 'peft', kind: { t: 'enum', values: ['lora', 'ia3', 'bitfit', 'adapter', 'prefix', 'prompt'] }, help: 'lora (default) | ia3 (scaling vectors) | bitfit (biases only) | adapter (bottleneck adapters) | prefix (prefix tuning) | prompt (prompt tuning)' },
  'adapter-kind': { key: 'adapterKind', kind: { t: 'enum', values: ['houlsby', 'pfeiffer'] }, help: 'bottleneck adapters: houlsby (after attention and FFN) or pfeiffer (after FFN; default)', peft: ['adapter'] },
  'reduction-factor': { key: 'reductionFactor', kind: int(1), help: 'bottleneck adapters: hidden size / bottleneck size (default 16)', peft: ['adapter'] },
  'num-virtual-tokens': { key: 'numVirtualTokens', kind: int(1), help: 'prompt / prefix tuning: virtual tokens (default 8)', peft: ['prefix', 'prompt'] },
  'prefix-projection': { key: 'prefixProjection', kind: { t: 'enum', values: ['on', 'off'] }, help: "prefix tuning: PEFT's reparameterisation MLP (default off)", peft: ['prefix'] },
  'feedforward-modules': { key: 'feedforwardModules', kind: { t: 'list' }, help: 'IA3: targets whose input is scaled (default: the family\'s FFN output projection)', peft: ['ia3'] },
  'lora-r': { key: 'loraR', kind: int(1), help: `LoRA rank (default ${DEFAULTS.loraR})`, peft: ['lora'] },
  'lora-alpha': { key: 'loraAlpha', kind: num(0, 1e6, 'min'), help: `LoRA alpha (default ${DEFAULTS.loraAlpha})`, peft: ['lora'] },
  'lora-dropout': { key: 'loraDropout', kind: num(0, 1, 'max'), help: 'LoRA dropout (default 0)', peft: ['lora'] },
  'target-modules': { key: 'targets', kind: { t: 'list' }, help: "comma-separated module names or 'all-linear' (default: query and value projections)", peft: ['lora', 'ia3', 'bitfit'] },
  optimizer: { key: 'optimizer', kind: { t: 'enum', values: ['adamw', 'kfac', 'sgd', 'shampoo', 'soap'] }, help: 'adamw | kfac | sgd | shampoo | soap (default kfac)' },
  lr: { key: 'lr', kind: num(0, 1e3, 'min'), help: `learning rate (default adamw ${DEFAULTS.lr.adamw}, kfac ${DEFAULTS.lr.kfac}, sgd ${DEFAULTS.lr.sgd}, shampoo ${DEFAULTS.lr.shampoo}, soap ${DEFAULTS.lr.soap})` },
  'weight-decay': { key: 'weightDecay', kind: num(0, 1e3), help: 'decoupled (AdamW) or L2 weight decay (default 0)', optimizers: ['adamw', 'sgd', 'kfac'] },
  schedule: { key: 'schedule', kind: { t: 'enum', values: ['constant', 'linear', 'cosine'] }, help: 'learning-rate schedule after warm-up (default cosine, to 0 at the last step)' },
  warmup: { key: 'warmup', kind: int(0), help: 'linear warm-up steps (default 10% of the steps; none for K-FAC with --momentum-of gradient, its default)' },
  momentum: { key: 'momentum', kind: num(0, 1, 'max'), help: `SGD / K-FAC momentum (default ${DEFAULTS.momentum})`, optimizers: ['sgd', 'kfac'] },
  nesterov: { key: 'nesterov', kind: { t: 'enum', values: ['on', 'off'] }, help: 'SGD / K-FAC: Nesterov momentum (default: on for K-FAC with momentum, off for SGD)', optimizers: ['sgd', 'kfac'] },
  'momentum-of': { key: 'momentumOf', kind: { t: 'enum', values: ['step', 'gradient'] }, help: `K-FAC: what the momentum averages, the clipped Newton steps (step) or the gradients before preconditioning (gradient; κ default ${DEFAULTS.trustRatioOfGradient}); default ${DEFAULTS.kfacMomentumOf}`, optimizers: KFAC },
  damping: { key: 'damping', kind: num(0, 1e6, 'min'), help: `K-FAC damping λ (default ${DEFAULTS.damping})`, optimizers: KFAC },
  'factor-decay': { key: 'factorDecay', kind: num(0, 1, 'max'), help: `K-FAC, Shampoo, SOAP: factor EMA β (default ${DEFAULTS.factorDecay})`, optimizers: KRONECKER },
  'kfac-method': { key: 'kfacMethod', kind: { t: 'enum', values: ['eigen', 'inverse', 'ekfac'] }, help: 'K-FAC preconditioning: ekfac (default: eigenvalue-corrected), eigen (the Kronecker eigenvalues) or inverse (π-damped inverses)', optimizers: KFAC },
  'adaptive-trust': { key: 'adaptiveTrust', kind: { t: 'enum', values: ['on', 'off'] }, help: 'K-FAC: adapt the trust ratio κ to the agreement of each gradient with the previous step (default off)', optimizers: KFAC },
  'adaptive-damping': { key: 'adaptiveDamping', kind: { t: 'enum', values: ['on', 'off'] }, help: 'K-FAC: adapt λ by Levenberg–Marquardt from the reduction ratio ρ (one extra forward every 5 steps; default on)', optimizers: KFAC },
  'inverse-every': { key: 'inverseEvery', kind: int(1), help: `K-FAC, Shampoo, SOAP: decomposition (eigenbasis refresh) interval (default ${DEFAULTS.inverseEvery})`, optimizers: KRONECKER },
  'factor-every': { key: 'factorEvery', kind: int(1), help: 'K-FAC: steps between factor and EKFAC moment updates (default 1; larger amortizes their cost on large models, docs/KFAC.md#cost)', optimizers: KFAC },
  'small-factor-dim': { key: 'smallFactorDim', kind: int(0), help: 'K-FAC: decompose factors of at most this dimension (LoRA\'s r×r side) at every step (default 64 with --kfac-method ekfac, the default; 0 with eigen)', optimizers: KFAC },
  'kfac-sequence': { key: 'kfacSequence', kind: { t: 'enum', values: ['expand', 'per-row'] }, help: "K-FAC G factor over tokens: 'expand' (default; sums an example's tokens) or 'per-row'", optimizers: KFAC },
  'newton-clip': { key: 'newtonClip', kind: { t: 'number-or-off', min: 0, max: 1e12 }, help: "clip the K-FAC Newton step to this norm, or 'off' (default: the trust-ratio clip)", optimizers: KRONECKER },
  'trust-ratio': { key: 'trustRatio', kind: num(0, 1e6, 'min'), help: `K-FAC default Newton clip: applied step ≤ κ × the weights' norm, per tensor (default κ = ${DEFAULTS.trustRatioOfGradient}, ${DEFAULTS.trustRatio} with --momentum-of step; Shampoo, SOAP ${DEFAULTS.shampooTrustRatio})`, optimizers: KRONECKER },
  'newton-clip-mode': { key: 'newtonClipMode', kind: { t: 'enum', values: ['global', 'per-tensor', 'fisher'] }, help: 'global, per-tensor or fisher (default: per-tensor for the trust ratio, global for --newton-clip N; fisher: --newton-clip is the bound c)', optimizers: KRONECKER },
  'grad-clip': { key: 'gradClip', kind: num(0, 1e12, 'min'), help: 'clip gradients by global norm (K-FAC: before preconditioning)' },
  steps: { key: 'steps', kind: int(1), help: 'optimizer steps (default: epochs × batches)' },
  epochs: { key: 'epochs', kind: int(1), help: 'epochs when --steps is not given (default 1)' },
  'batch-size': { key: 'batchSize', kind: int(1), help: `examples per batch (default ${DEFAULTS.batchSize})` },
  'grad-accumulation': { key: 'gradAccumulation', kind: int(1), help: 'micro-batches per step (default 1)' },
  'max-length': { key: 'maxLength', kind: int(2), help: `tokens per example / LM block (default ${DEFAULTS.maxLength})` },
  'eval-every': { key: 'evalEvery', kind: int(1), help: 'evaluate every N steps (default: at the end)' },
  patience: { key: 'patience', kind: int(1), help: 'early stopping after N evaluations without improvement' },
  seed: { key: 'seed', kind: int(0), help: 'seed of the head, LoRA init and data order (default 0)' },
  name: { key: 'name', kind: { t: 'string' }, help: 'label of the run in logs and reports' },
  device: { key: 'device', kind: { t: 'enum', values: ['cpu', 'cuda', 'auto'] }, help: 'cpu (default) | cuda | auto (the GPU when usable, else the CPU with the reason printed)' },
  dtype: { key: 'dtype', kind: { t: 'enum', values: ['float32', 'bfloat16'] }, help: 'storage of the frozen base weights (default float32; bfloat16 halves their memory)' },
  activations: { key: 'activations', kind: { t: 'enum', values: ['float32', 'bfloat16'] }, help: 'storage of the activations on cuda (default float32; bfloat16 halves their memory, docs/CUDA.md)' },
  'gradient-checkpointing': { key: 'gradientCheckpointing', kind: { t: 'flag' }, help: 'recompute each block in the backward instead of keeping its activations (in --runs: =on|off)' },
};

/** Parses one value of a run option; throws UsageError naming the flag. */
export function parseRunValue(flag: string, raw: string): unknown {
  const spec = RUN_FLAGS[flag];
  if (!spec) throw new UsageError(`unknown option --${flag}`);
  const k = spec.kind;
  const bad = (what: string): never => {
    throw new UsageError(`--${flag}: expected ${what}, got ${JSON.stringify(raw)}`);
  };
  switch (k.t) {
    case 'string':
      return raw;
    case 'flag':
      return raw === 'on' || raw === 'true' ? true : raw === 'off' || raw === 'false' ? false : bad('on | off');
    case 'list':
      return raw === 'all-linear' ? 'all-linear' : raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0 || bad('comma-separated names'));
    case 'enum':
      return k.values.includes(raw) ? raw : bad(k.values.join(' | '));
    case 'number-or-off': {
      if (raw === 'off') return 'off';
      const v = raw.trim() === '' ? NaN : Number(raw);
      return Number.isFinite(v) && v > k.min && v <= k.max ? v : bad(`a number in (${k.min}, ${k.max}] or 'off'`);
    }
    case 'int': {
      if (!/^\d+$/.test(raw)) bad(`an integer ≥ ${k.min}`);
      const v = Number(raw);
      return Number.isSafeInteger(v) && v >= k.min ? v : bad(`an integer ≥ ${k.min}`);
    }
    case 'number': {
      const v = raw.trim() === '' ? NaN : Number(raw);
      const loOk = k.open === 'min' || k.open === 'both' ? v > k.min : v >= k.min;
      const hiOk = k.open === 'max' || k.open === 'both' ? v < k.max : v <= k.max;
      const range = `${k.open === 'min' || k.open === 'both' ? '(' : '['}${k.min}, ${k.max}${k.open === 'max' || k.open === 'both' ? ')' : ']'}`;
      return Number.isFinite(v) && loOk && hiOk ? v : bad(`a number in ${range}`);
    }
  }
}

/** Flag kinds for parseArgs: every run option takes a string value, except the on/off flags. */
export function runFlagKinds(): Record<string, 'string' | 'boolean'> {
  return Object.fromEntries(Object.entries(RUN_FLAGS).map(([f, s]) => [f, s.kind.t === 'flag' ? ('boolean' as const) : ('string' as const)]));
}

/** RunConfig fields from parsed string flags (only those given). */
export function runOverrides(flags: Record<string, unknown>): Partial<RunConfig> {
  const out: Record<string, unknown> = {};
  for (const [f, v] of Object.entries(flags)) {
    if (RUN_FLAGS[f] && typeof v === 'string') out[RUN_FLAGS[f].key] = parseRunValue(f, v);
    else if (RUN_FLAGS[f]?.kind.t === 'flag' && v === true) out[RUN_FLAGS[f].key] = true;
  }
  return out as Partial<RunConfig>;
}

const FLAG_OF = new Map(Object.entries(RUN_FLAGS).map(([flag, s]) => [s.key, flag]));

const either = (xs: readonly string[]) => (xs.length === 1 ? `${xs[0]} only` : `${xs.slice(0, -1).join(', ')} or ${xs[xs.length - 1]}`);

/**
 * Why the option of RunConfig field `key` does not apply to a run of `optimizer` with `peft` (the
 * optimizer or the PEFT method never reads it), or null when it does: `completeRun` refuses such an
 * option, and `compare` gives its shared options only to the runs they apply to.
 */
export function notApplicable(key: keyof RunConfig, optimizer: OptimizerName, peft: PeftName): string | null {
  const flag = FLAG_OF.get(key);
  const s = flag === undefined ? undefined : RUN_FLAGS[flag];
  if (!s) return null;
  if (s.optimizers && !s.optimizers.includes(optimizer)) return `${appliesTo(key)} (got ${optimizer})`;
  if (s.peft && !s.peft.includes(peft)) return `${appliesTo(key)} (got ${peft})`;
  return null;
}

/** "--damping applies to --optimizer kfac only", or null for an option every run reads. */
export function appliesTo(key: keyof RunConfig): string | null {
  const flag = FLAG_OF.get(key);
  const s = flag === undefined ? undefined : RUN_FLAGS[flag];
  if (s?.optimizers) return `--${flag} applies to --optimizer ${either(s.optimizers)}`;
  if (s?.peft) return `--${flag} applies to --peft ${either(s.peft)}`;
  return null;
}

/**
 * A full RunConfig: defaults (the learning rate by optimizer), then the given fields. A given
 * option that the run's optimizer or PEFT method does not read is a UsageError naming it.
 */
export function completeRun(given: Partial<RunConfig>): RunConfig {
  if (!given.model) throw new UsageError('--model is required');
  if (!given.data) throw new UsageError('--data is required');
  const c = withDefaults({ ...given, model: given.model, data: given.data });
  if (!c.name) c.name = defaultName(c);
  checkRun(c, given);
  return c;
}

/** The combinations of a whole configuration `c` that the table cannot refuse one by one; `given` are the options set by hand. */
function checkRun(c: RunConfig, given: Partial<RunConfig>): void {
  // what the table below cannot say: a norm threshold is K-FAC's alone (Shampoo and SOAP take the
  // trust-ratio clip or none)
  if (typeof c.newtonClip === 'number' && c.optimizer !== 'kfac') throw new UsageError(`--newton-clip applies to --optimizer kfac only as a norm threshold (got ${c.optimizer})`);
  for (const key of Object.keys(given) as (keyof RunConfig)[]) {
    const why = given[key] === undefined ? null : notApplicable(key, c.optimizer, c.peft ?? 'lora');
    if (why) throw new UsageError(why);
  }
  if (given.trustRatio !== undefined && (typeof c.newtonClip === 'number' || c.newtonClip === 'off'))
    throw new UsageError('--trust-ratio sets the default Newton clip: it needs no --newton-clip');
  if (c.patience !== undefined && c.evalEvery === undefined) throw new UsageError('--patience needs --eval-every');
  if (c.nesterov === 'on' && !(c.momentum > 0)) throw new UsageError(`--nesterov on needs --momentum above 0 (got ${c.momentum})`);
}

/**
 * The configuration a resumed run continues with: `saved`, the run's own (its config.json, read
 * from `file`), with the options given now over it. The saved fields go through the table's
 * checks (a FormatError naming the file and the field when one fails) and are not completed with
 * today's defaults: a field a run did not record keeps the meaning it had when the run started
 * (docs/CLI.md#resume). `changed` is told each option given now that differs from the run's.
 */
export function resumedRun(saved: unknown, file: string, given: Partial<RunConfig>, changed: (line: string) => void = () => {}): RunConfig {
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) throw new FormatError(file, 'expected a JSON object (a run configuration)');
  // a field saved as null was not set
  const s = Object.fromEntries(Object.entries(saved).filter(([, v]) => v !== null)) as Record<string, unknown>;
  for (const [key, v] of Object.entries(s)) {
    const flag = FLAG_OF.get(key as keyof RunConfig);
    if (flag === undefined) throw new FormatError(file, `unknown field "${key}" (not an option of a run)`);
    try {
      parseRunValue(flag, asFlagValue(flag, RUN_FLAGS[flag]!.kind, v));
    } catch (e) {
      if (e instanceof UsageError) throw new FormatError(file, `field "${key}": ${e.message}`);
      throw e;
    }
  }
  for (const key of ['model', 'data', 'optimizer', 'lr'] as const) if (s[key] === undefined) throw new FormatError(file, `field "${key}" is missing`);
  for (const [key, v] of Object.entries(given) as [keyof RunConfig, unknown][])
    if (v !== undefined && JSON.stringify(v) !== JSON.stringify(s[key])) changed(`--${FLAG_OF.get(key)} ${show(v)} replaces the run's ${s[key] === undefined ? 'default' : show(s[key])}`);
  const c = { ...(s as unknown as RunConfig), ...given };
  checkRun(c, given);
  return c;
}

const show = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));

/** A saved field's value as its flag would have been written; a value of the wrong JSON type is a UsageError naming the flag. */
function asFlagValue(flag: string, kind: Kind, v: unknown): string {
  const ok =
    kind.t === 'flag' ? typeof v === 'boolean'
    : kind.t === 'list' ? v === 'all-linear' || (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x.length > 0 && !x.includes(',')))
    : kind.t === 'string' || kind.t === 'enum' ? typeof v === 'string'
    : typeof v === 'number' || (kind.t === 'number-or-off' && v === 'off');
  if (!ok) throw new UsageError(`--${flag}: expected ${kind.t === 'flag' ? 'true or false' : kind.t === 'list' ? "'all-linear' or a list of names" : kind.t === 'string' || kind.t === 'enum' ? 'a string' : 'a number'}, got ${JSON.stringify(v)}`);
  return typeof v === 'boolean' ? (v ? 'on' : 'off') : Array.isArray(v) ? v.join(',') : String(v);
}

/** e.g. "adamw lr=0.001", "kfac+newton-clip=1". */
export function defaultName(c: Pick<RunConfig, 'optimizer' | 'lr' | 'newtonClip' | 'gradClip'> & { trustRatio?: number; momentumOf?: 'step' | 'gradient' }): string {
  let n = `${c.optimizer} lr=${c.lr}`;
  if (c.newtonClip !== undefined) n += ` newton-clip=${c.newtonClip}`;
  if (c.trustRatio !== undefined && c.trustRatio !== defaultTrustRatio(c.optimizer, c.momentumOf) && c.optimizer !== 'adamw' && c.optimizer !== 'sgd' && c.newtonClip === undefined) n += ` trust-ratio=${c.trustRatio}`;
  if (c.gradClip !== undefined) n += ` grad-clip=${c.gradClip}`;
  return n;
}

export function runFlagsHelp(): string {
  return Object.entries(RUN_FLAGS)
    .map(([f, s]) => `  --${f.padEnd(20)} ${s.help}`)
    .join('\n');
}

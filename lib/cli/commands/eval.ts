/** `kfac-peft eval --model … --data … [--adapter DIR]`: dev loss and metrics of a model (with a PEFT adapter). */
import { loadAdapterFor } from '../load-adapter.js';
import { withOomContext } from '../../models/index.js';
import { setNumThreads } from '../../runtime.js';
import { buildTask, loadRunModel, monitorOf, prepareRun } from '../../train/run.js';
import { withDevice } from '../device.js';
import { parseArgs, UsageError } from '../args.js';
import { completeRun, runOverrides } from '../run-flags.js';

export const EVAL_USAGE = `usage: kfac-peft eval --model <dir|file.bin> --data <dir|file> [--adapter DIR] [options]

Evaluates on the dev split: the loss and the task's metrics (causal LM: perplexity).
options:
  --adapter DIR        a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)
  --tokenizer FILE     tokenizer.json or llama2.c tokenizer .bin (default: beside the model)
  --dev FILE           dev split (default: dev.* in the data folder, else the 10% hold-out of train)
  --text-column, --text-pair-column, --label-column NAME
  --max-length N       tokens per example / LM block (default 128)
  --batch-size N       examples per forward pass (default 16)
  --eval-limit N       at most N dev examples (causal LM: blocks)
  --seed N             seed of the hold-out split and of a fresh head (default 0)
  --device D           cpu (default) | cuda | auto (the GPU when usable, else the CPU with the reason)
  --dtype T            storage of the frozen base weights: float32 (default) | bfloat16
  --activations T      storage of the activations on cuda: float32 (default) | bfloat16
  --threads N          CPU threads
  --json               print the result as JSON
`;

const FLAGS = {
  model: 'string', data: 'string', adapter: 'string', tokenizer: 'string', dev: 'string', 'text-column': 'string', 'text-pair-column': 'string', 'label-column': 'string',
  'max-length': 'string', 'batch-size': 'string', 'eval-limit': 'string', seed: 'string', device: 'string', dtype: 'string', activations: 'string', threads: 'int', json: 'boolean',
} as const;

export async function evalCommand(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(EVAL_USAGE);
    return 0;
  }
  const { positional, flags } = parseArgs(argv, FLAGS);
  if (positional.length > 0) throw new UsageError(`eval takes no positional arguments, got ${positional.join(' ')}`);
  const adapter = flags['adapter'] as string | undefined;
  const { adapter: _a, threads, json, ...runFlags } = flags;
  const config = withDevice(completeRun(runOverrides(runFlags)));
  if (threads !== undefined) setNumThreads(threads as number);
  const p = prepareRun(config);
  const d = p.data;
  const model = loadRunModel(p);
  try {
    if (adapter !== undefined) loadAdapterFor(model, adapter, config.model);
    const task = buildTask(p, model);
    const t0 = Date.now();
    const r = task.evaluate();
    const { monitor } = monitorOf(d);
    const out = { model: config.model, adapter: adapter ?? null, data: d.source, split: 'dev', examples: d.dev.length, loss: r.loss, metrics: r.metrics, monitor, seconds: (Date.now() - t0) / 1000 };
    if (json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    else {
      const m = Object.entries(r.metrics).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join('  ');
      process.stdout.write(`${config.model}${adapter ? ` + ${adapter}` : ''} on ${d.source} (dev): loss ${r.loss.toPrecision(4)}  ${m}\n`);
    }
    return 0;
  } catch (e) {
    throw withOomContext('evaluating', e);
  } finally {
    model.dispose();
  }
}

/** Loading a PEFT adapter for a command: a failure names the adapter folder and the model it was meant to fit. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { KfacError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { loadAdapter, loadBitfit, loadBottleneck, loadIa3Adapter, loadPrefixTuning, loadPromptTuning } from '../peft/index.js';

/** peft_type of the folder's adapter_config.json (null when unreadable: the LoRA loader reports it). */
function peftType(dir: string): unknown {
  try {
    return (JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>)['peft_type'];
  } catch {
    return null;
  }
}

export function loadAdapterFor(model: Module, adapter: string, modelPath: string): void {
  try {
    const t = peftType(adapter);
    if (t === 'IA3') loadIa3Adapter(model, adapter);
    else if (t === 'BITFIT') loadBitfit(model, adapter);
    else if (t === 'BOTTLENECK') loadBottleneck(model, adapter);
    else if (t === 'PROMPT_TUNING') loadPromptTuning(model, adapter);
    else if (t === 'PREFIX_TUNING') loadPrefixTuning(model, adapter);
    else loadAdapter(model, adapter);
  } catch (e) {
    if (e instanceof KfacError) throw new KfacError(e.code, `--adapter ${adapter} does not fit the model ${modelPath}: ${e.message}`, { cause: e });
    throw e;
  }
}

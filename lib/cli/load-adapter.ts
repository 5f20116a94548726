/** Loading a PEFT adapter for a command: a failure names the adapter folder and the model it was meant to fit. */
import { KfacError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { loadAdapter } from '../peft/index.js';

export function loadAdapterFor(model: Module, adapter: string, modelPath: string): void {
  try {
    loadAdapter(model, adapter);
  } catch (e) {
    if (e instanceof KfacError) throw new KfacError(e.code, `--adapter ${adapter} does not fit the model ${modelPath}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * The two pieces every adapter folder writer shares: PEFT's `task_type` for a model, and the
 * sorted, two-space JSON that PEFT's own `adapter_config.json` uses.
 */
import type { Module } from '../nn/module.js';

/** PEFT's task_type for the model's task: CAUSAL_LM, SEQ_2_SEQ_LM, SEQ_CLS, or null for other tasks. */
export function peftTaskType(model: Module): string | null {
  const t = (model as { task?: unknown }).task;
  if (t === 'causal-lm') return 'CAUSAL_LM';
  if (t === 'seq2seq-lm') return 'SEQ_2_SEQ_LM';
  return t === 'sequence-classification' || t === 'regression' ? 'SEQ_CLS' : null;
}

/** The object as JSON with its top-level keys sorted, indented by two spaces, newline-terminated. */
export function sortedJson(o: Record<string, unknown>): string {
  return `${JSON.stringify(Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]])), null, 2)}\n`;
}

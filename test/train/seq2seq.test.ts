/**
 * Sequence-to-sequence training on T5 (test/fixtures/models/t5-v1_1 with its Unigram tokenizer):
 * GLUE as text-to-text and source/target tables; LoRA with K-FAC, whose blocks see the encoder,
 * the decoder's self- and cross-attention; the training loss falls and the dev evaluation
 * generates text to compare with the targets.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { completeRun } from '../../lib/cli/run-flags.js';
import { kfacLayersForLora } from '../../lib/peft/index.js';
import { DataError } from '../../lib/train/data.js';
import { buildModel, buildOptimizer, buildTask, monitorOf, prepareRun } from '../../lib/train/run.js';
import { glueAsText, resolveSeq2SeqData, Seq2SeqTask } from '../../lib/train/seq2seq.js';
import { ROOT } from '../support/tiny-cli.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'models', 't5-v1_1');
const tmp = mkdtempSync(join(tmpdir(), 'kfac-seq2seq-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const words = ['the best film', 'a waste of time', 'a gripping and moving film', 'the plot is thin', 'a good movie', 'the acting is worse'];

function sst2(): string {
  const dir = join(tmp, 'SST-2');
  mkdirSync(dir, { recursive: true });
  const rows = (n: number, k: number) => ['sentence\tlabel', ...Array.from({ length: n }, (_, i) => `${words[(i + k) % words.length]}\t${(i + k) % 2}`)].join('\n') + '\n';
  writeFileSync(join(dir, 'train.tsv'), rows(24, 0));
  writeFileSync(join(dir, 'dev.tsv'), rows(6, 1));
  return dir;
}

describe('seq2seq data', () => {
  test('GLUE tasks read as T5 text-to-text', () => {
    expect(glueAsText('SST-2', 'a fine film', undefined, 1)).toEqual({ source: 'sst2 sentence: a fine film', target: 'positive' });
    expect(glueAsText('RTE', 'a man sleeps', 'nobody sleeps', 1)).toEqual({ source: 'rte sentence1: a man sleeps sentence2: nobody sleeps', target: 'not_entailment' });
    expect(glueAsText('MRPC', 'x', 'y', 1).target).toBe('equivalent');
    expect(glueAsText('STS-B', 'x', 'y', 3.87).target).toBe('3.8');
    const d = resolveSeq2SeqData(sst2());
    expect(d.train.length).toBe(24);
    expect(d.dev[0]).toEqual({ source: `sst2 sentence: ${words[1]}`, target: 'positive' });
  });

  test('tables with source and target columns (or mapped ones); a missing column is a DataError naming it', () => {
    const f = join(tmp, 'pairs.tsv');
    writeFileSync(f, 'source\ttarget\n' + Array.from({ length: 10 }, (_, i) => `translate: ${words[i % 6]}\t${i % 2 ? 'positive' : 'negative'}`).join('\n') + '\n');
    const d = resolveSeq2SeqData(f, { seed: 1 });
    expect(d.train.length + d.dev.length).toBe(10);
    expect(d.dev.length).toBe(1);
    const g = join(tmp, 'mapped.tsv');
    writeFileSync(g, 'q\ta\nhello\tworld\nfoo\tbar\nbaz\tqux\n');
    expect(resolveSeq2SeqData(g, { textColumn: 'q', labelColumn: 'a', dev: g }).dev[2]).toEqual({ source: 'baz', target: 'qux' });
    expect(() => resolveSeq2SeqData(g)).toThrow(DataError);
    expect(() => resolveSeq2SeqData(g)).toThrow(/"source"/);
  });
});

describe('LoRA + K-FAC on T5', () => {
  test('K-FAC blocks cover encoder, decoder self- and cross-attention; the loss falls; eval generates', () => {
    const config = completeRun({ model: MODEL, data: sst2(), optimizer: 'kfac', lr: 0.1, damping: 0.01, targets: 'all-linear', batchSize: 8, maxLength: 32, seed: 2 });
    const p = prepareRun(config);
    expect(p.data.kind).toBe('seq2seq');
    expect(monitorOf(p.data)).toEqual({ monitor: 'exact_match', mode: 'max' });
    const model = buildModel(p);
    try {
      const task = buildTask(p, model);
      expect(task).toBeInstanceOf(Seq2SeqTask);
      const opt = buildOptimizer(config, model, 18);
      const names = kfacLayersForLora(model, { heads: true }).map((l) => l.name);
      for (const want of [
        'encoder.block.0.layer.0.SelfAttention.q.lora_A',
        'decoder.block.2.layer.0.SelfAttention.v.lora_B',
        'decoder.block.1.layer.1.EncDecAttention.k.lora_A',
        'decoder.block.0.layer.1.EncDecAttention.q.lora_B',
        'decoder.block.2.layer.2.DenseReluDense.wi_1.lora_A',
      ])
        expect(names, want).toContain(want);
      const losses: number[] = [];
      let step = 0;
      for (let epoch = 0; step < 18; epoch++)
        for (const b of task.batches(epoch, 2 + epoch)) {
          task.zeroGrad();
          const r = task.lossAndBackward(b as never);
          opt.capture?.({ batchSize: r.batchSize });
          opt.step({ batchSize: r.batchSize });
          losses.push(r.loss);
          if (++step === 18) break;
        }
      expect(losses.every(Number.isFinite)).toBe(true);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      expect(mean(losses.slice(-6))).toBeLessThan(0.7 * mean(losses.slice(0, 6)));
      const ev = task.evaluate();
      expect(Number.isFinite(ev.loss)).toBe(true);
      expect(ev.metrics['exact_match']).toBeGreaterThanOrEqual(0);
      expect(ev.metrics['exact_match']).toBeLessThanOrEqual(1);
    } finally {
      model.dispose();
    }
  }, 60_000);
});

/**
 * `kfac-peft bench train-step` on a shrunken shape (2 layers, hidden 64) on the CPU: the JSON
 * report has every measured field finite and in range, K-FAC's ratio to AdamW on the same model,
 * the bf16 GEMM peak of the same run, and the fields it did not measure (no peer asked for) named
 * in notMeasured rather than filled in. Timings are not asserted (bench/, not a unit test).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { cli as runCli } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-bench-ts-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = (args: string[]) => runCli(tmp, args);

describe('bench train-step', () => {
  test('a shrunken llama-1b step with K-FAC and gradient checkpointing: the report', () => {
    const r = cli(['bench', 'train-step', '--shape', 'llama-1b', '--layers', '2', '--hidden', '64', '--vocab', '256', '--seq', '16', '--batch', '2', '--steps', '3', '--warmup', '1', '--peak-size', '128', '--optimizer', 'kfac', '--gradient-checkpointing', '--dtype', 'bfloat16', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown> & { stepMs: { median: number; mean: number }; config: Record<string, number>; notMeasured: string[] };
    expect(j['shape']).toBe('llama-1b');
    expect(j.config).toMatchObject({ num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 1, num_key_value_heads: 1, vocab_size: 256 });
    expect(j).toMatchObject({ device: 'cpu', optimizer: 'kfac', dtype: 'bfloat16', activations: 'float32', checkpointing: true, batch: 2, seq: 16, peer: null });
    expect(j.stepMs.median).toBeGreaterThan(0);
    // throughput over the mean step: K-FAC's periodic refresh is paid, as in a run
    expect(j['tokensPerSecond'] as number).toBeCloseTo((2 * 16 * 1000) / j.stepMs.mean, 6);
    for (const k of ['tokensPerSecond', 'stepTflops', 'gemmTflops', 'peakBf16Tflops', 'kfacOverAdamw', 'adamwStepMs', 'peakMemoryBytes', 'lastLoss'])
      expect(Number.isFinite(j[k]) && (j[k] as number) > 0, `${k}: ${String(j[k])}`).toBe(true);
    const f = j['flopsPerStep'] as { linear: number; attention: number };
    // linear: 4·tokens·(blocks' weights + LM head) + 6·tokens·r·(din + dout) per adapted layer; attention: 12·B·T²·C·layers
    const blockW = 2 * (4 * 64 * 64 + 3 * 64 * 176);
    expect(f.linear).toBe(4 * 32 * (blockW + 256 * 64) + 6 * 32 * 2 * 16 * (4 * 128 + 3 * 240));
    expect(f.attention).toBe(12 * 2 * 16 * 16 * 64 * 2);
    expect(j['gemmShare'] as number).toBeGreaterThan(0);
    expect(j['gemmShare'] as number).toBeLessThanOrEqual(1);
    // LoRA r = 16 on the 7 linear layers of each of the 2 blocks
    expect(j['trainable']).toBe(2 * 16 * (4 * (64 + 64) + 3 * (64 + 176)));
    // 3 timed steps after 1 warm-up: K-FAC's steps 1–3, no refresh (every 10) and no damping probe (every 5) among them, which the report says
    expect(j).toMatchObject({ refreshesTimed: 0, probesTimed: 0, refreshStepMs: null });
    expect(j['firstStepMs'] as number).toBeGreaterThan(0);
    expect(j.notMeasured).toHaveLength(2);
    expect(j.notMeasured[0]).toMatch(/^kfacOverAdamw over whole refresh windows: 3 timed steps are not a multiple of inverseEvery \(10\), so the mean holds 0 refresh\(es\)/);
    expect(j.notMeasured[1]).toBe('peer: run with --peer torch');
    expect(j['deviceCache']).toBeNull(); // the caching device allocator's counts are for cuda runs
  });

  test('K-FAC over its default 10 timed steps: one refresh and two damping probes, as a run pays them', () => {
    const r = cli(['bench', 'train-step', '--shape', 'llama-125m', '--layers', '1', '--hidden', '64', '--vocab', '128', '--seq', '8', '--batch', '2', '--warmup', '1', '--peak-size', '64', '--optimizer', 'kfac', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown> & { stepMs: { mean: number }; notMeasured: string[] };
    expect(j).toMatchObject({ refreshesTimed: 1, probesTimed: 2, capturesTimed: 10 });
    expect(j['refreshStepMs'] as number).toBeGreaterThan(0);
    expect(j.notMeasured).toEqual(['peer: run with --peer torch']);
    // the ratio is of the means over the same 10-step window
    expect(j['kfacOverAdamw'] as number).toBeCloseTo(j.stepMs.mean / (j['adamwStepMs'] as number), 9);
  });

  test('AdamW: no K-FAC fields measured', () => {
    const r = cli(['bench', 'train-step', '--shape', 'llama-125m', '--layers', '1', '--hidden', '64', '--vocab', '128', '--seq', '8', '--batch', '2', '--steps', '2', '--warmup', '1', '--peak-size', '64', '--optimizer', 'adamw', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ optimizer: 'adamw', refreshesTimed: 0, probesTimed: 0, refreshStepMs: null, kfacOverAdamw: null });
    expect(j['notMeasured']).toEqual(['kfacOverAdamw: run with --optimizer kfac', 'peer: run with --peer torch']);
  });

  test('--flops counts without timing; the timed K-FAC report carries the same counts at the intervals given', () => {
    const small = ['--shape', 'llama-125m', '--layers', '2', '--hidden', '64', '--vocab', '128', '--seq', '8', '--batch', '2'];
    // on a machine without a GPU, a count for cuda is still a count (it needs no device)
    const c = cli(['bench', 'train-step', ...small, '--device', 'cuda', '--flops', '--json']);
    expect(c.code, c.stderr).toBe(0);
    const f = JSON.parse(c.stdout) as { layers: number; kfac: Record<string, number>; kfacOverModel: number; model: { linear: number; attention: number }; within: unknown };
    expect(f.layers).toBe(2);
    expect(f.kfac).toMatchObject({ factorEvery: 1, inverseEvery: 10 });
    expect(f.kfacOverModel).toBeCloseTo(f.kfac['perStep']! / (f.model.linear + f.model.attention), 12);
    // the intervals are passed to the count and to the timed optimizer alike
    const spaced = cli(['bench', 'train-step', ...small, '--flops', '--factor-every', '4', '--inverse-every', '20', '--json']);
    const g = JSON.parse(spaced.stdout) as { kfac: Record<string, number> };
    expect(g.kfac).toMatchObject({ factorEvery: 4, inverseEvery: 20 });
    expect(g.kfac['perStep']).toBeCloseTo((f.kfac['factorUpdates']! + f.kfac['moments']!) / 4 + f.kfac['precondition']! + f.kfac['refreshGemm']! / 20, 3);
    const timed = cli(['bench', 'train-step', ...small, '--steps', '4', '--warmup', '1', '--peak-size', '64', '--optimizer', 'kfac', '--factor-every', '4', '--inverse-every', '20', '--json']);
    expect(timed.code, timed.stderr).toBe(0);
    const t = JSON.parse(timed.stdout) as { kfacFlops: { kfac: Record<string, number> }; notMeasured: string[]; refreshesTimed: number; capturesTimed: number };
    expect(t.kfacFlops.kfac).toEqual(g.kfac);
    // warm-up step 0 then timed steps 1–4: no refresh (every 20), one factor update (step 4)
    expect(t.refreshesTimed).toBe(0);
    expect(t.capturesTimed).toBe(1);
    expect(t.notMeasured[0]).toMatch(/not a multiple of inverseEvery \(20\)/);
    expect(t.notMeasured).toHaveLength(2);
    const odd = cli(['bench', 'train-step', ...small, '--steps', '3', '--warmup', '1', '--peak-size', '64', '--optimizer', 'kfac', '--factor-every', '2', '--json']);
    const o = JSON.parse(odd.stdout) as { notMeasured: string[]; capturesTimed: number };
    // timed steps 1–3: one factor update (step 2), and the mean is not over whole windows of 2
    expect(o.capturesTimed).toBe(1);
    expect(o.notMeasured).toContain('kfacOverAdamw over whole capture windows: 3 timed steps are not a multiple of factorEvery (2), so the mean holds 1 factor update(s) where a run pays one per 2 steps');
    // text: the table names its parts
    const text = cli(['bench', 'train-step', ...small, '--flops']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/EKFAC second moments, per capture/);
    expect(text.stdout).toMatch(/intervals within 15 % of the model step/);
    const bad = cli(['bench', 'train-step', ...small, '--flops', '--factor-every', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--factor-every: expected positive integers, got "0"/);
    // a timed AdamW row has no K-FAC intervals: refused, not ignored
    const adamw = cli(['bench', 'train-step', ...small, '--steps', '1', '--inverse-every', '5']);
    expect(adamw.code).toBe(2);
    expect(adamw.stderr).toMatch(/--inverse-every applies to --optimizer kfac, shampoo or soap \(got adamw\)/);
  });

  test('--config counts (and times) a Hugging Face config of its own: GQA and any MLP width', () => {
    // LLaMA, hidden 64, 2 layers, 2 heads of 32 with 1 key-value head, MLP 100, vocabulary 50
    const cfg = { model_type: 'llama', vocab_size: 50, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 100, max_position_embeddings: 64, rms_norm_eps: 1e-5, tie_word_embeddings: false };
    const file = join(tmp, 'config.json');
    writeFileSync(file, JSON.stringify(cfg));
    const c = cli(['bench', 'train-step', '--config', file, '--seq', '8', '--batch', '2', '--flops', '--json']);
    expect(c.code, c.stderr).toBe(0);
    const f = JSON.parse(c.stdout) as { shape: string; layers: number; model: { linear: number; attention: number }; kfac: { factors: { large: number; small: number; largestDim: number } } };
    expect(f.shape).toBe(file);
    expect(f.layers).toBe(2);
    // per block: q, o 64×64; k, v 32×64; gate, up 100×64; down 64×100 — each adapted at r = 16
    const blockW = 2 * 64 * 64 + 2 * 32 * 64 + 3 * 100 * 64;
    const adapted = 16 * (2 * 128 + 2 * 96 + 3 * 164);
    expect(f.model.linear).toBe(4 * (16 * blockW * 2 + 16 * 50 * 64) + 6 * 16 * adapted * 2);
    expect(f.model.attention).toBe(12 * 2 * 8 * 8 * 64 * 2);
    // factors ≤ 64 are small: per block the A factors of q|k|v, o, gate|up (64) and the 7 of lora_B's
    // r×r inputs, the G factors of lora_A (7 of 16) and of q, o, down (64), k, v (32); down's A and
    // gate's and up's G (100) are large
    expect(f.kfac.factors).toEqual({ large: 2 * 3, small: 2 * (3 + 7 + 7 + 5), largestDim: 100 });
    const timed = cli(['bench', 'train-step', '--config', file, '--seq', '8', '--batch', '2', '--steps', '1', '--warmup', '1', '--peak-size', '32', '--json']);
    expect(timed.code, timed.stderr).toBe(0);
    expect(JSON.parse(timed.stdout)).toMatchObject({ shape: file, config: cfg });
    // bad input: both, an unreadable file, another model type
    expect(cli(['bench', 'train-step', '--config', file, '--shape', 'llama-1b', '--flops']).stderr).toMatch(/--shape and --config: give one/);
    const none = cli(['bench', 'train-step', '--config', join(tmp, 'none.json'), '--flops']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--config: cannot read .*none\.json/);
    writeFileSync(join(tmp, 't5.json'), JSON.stringify({ model_type: 't5' }));
    expect(cli(['bench', 'train-step', '--config', join(tmp, 't5.json'), '--flops']).stderr).toMatch(/builds llama and bert models, .* has model_type "t5"/);
  });

  test('bad input: a missing or unknown shape is a usage error', () => {
    const r = cli(['bench', 'train-step', '--device', 'cpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--shape: expected llama-125m \| llama-1b \| llama-3b \| bert-base, got nothing/);
    // bf16 activations are a cuda storage: refused on the CPU, naming the option
    const a = cli(['bench', 'train-step', '--shape', 'llama-125m', '--device', 'cpu', '--activations', 'bfloat16']);
    expect(a.code).not.toBe(0);
    expect(a.stderr).toMatch(/activations/);
  });
});

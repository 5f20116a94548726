/** The Trainer on a small logistic-regression task built from the library's own ops. */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { OutOfMemoryError } from '../../lib/errors.js';
import { linalg, ops, optim, Tensor } from '../../lib/index.js';
import { OOM_HINT } from '../../lib/models/index.js';
import { loadOptimizerState, saveOptimizerState } from '../../lib/peft/checkpoint.js';
import { accuracy } from '../../lib/train/metrics.js';
import { Trainer, type TrainerState, type TrainerTask, writeJsonAtomic } from '../../lib/train/trainer.js';
import { rng } from '../support/helpers.js';

/** Two Gaussian blobs in 5-D; a linear model w·x + b with a logistic loss. */
class Blobs implements TrainerTask<number[]> {
  readonly w = { name: 'w', tensor: Tensor.zeros([1, 5]), grad: Tensor.zeros([1, 5]) as Tensor | null };
  readonly b = { name: 'b', tensor: Tensor.zeros([1]), grad: Tensor.zeros([1]) as Tensor | null };
  readonly X: Float32Array;
  readonly y: Int32Array;
  saved: string[] = [];
  /** Saved with the checkpoint when set. */
  optimizer: optim.SGD | undefined;
  constructor(
    readonly n = 96,
    readonly batch = 8,
  ) {
    const r = rng(3);
    this.X = new Float32Array(n * 5);
    this.y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.y[i] = i % 2;
      for (let j = 0; j < 5; j++) this.X[i * 5 + j] = (this.y[i] ? 0.8 : -0.8) + (2 * r() - 1);
    }
  }
  *batches(_epoch: number, seed: number): Iterable<number[]> {
    const r = rng(seed + 1);
    const idx = Array.from({ length: this.n }, (_, i) => i).sort(() => r() - 0.5);
    for (let i = 0; i + this.batch <= this.n; i += this.batch) yield idx.slice(i, i + this.batch);
  }
  forward(rows: number[]): Float32Array {
    const x = Tensor.from(Float32Array.from(rows.flatMap((i) => Array.from(this.X.subarray(i * 5, i * 5 + 5)))), [rows.length, 5]);
    const z = linalg.matmul(x, this.w.tensor, { transB: true }).toArray();
    const b = this.b.tensor.toArray()[0]!;
    return z.map((v) => v + b);
  }
  lossAndBackward(rows: number[]) {
    const z = this.forward(rows);
    let loss = 0;
    const gw = new Float32Array(5);
    let gb = 0;
    rows.forEach((i, k) => {
      const p = 1 / (1 + Math.exp(-z[k]!));
      const y = this.y[i]!;
      loss += -(y ? Math.log(p) : Math.log(1 - p)) / rows.length;
      const d = (p - y) / rows.length;
      for (let j = 0; j < 5; j++) gw[j]! += d * this.X[i * 5 + j]!;
      gb += d;
    });
    ops.add(this.w.grad!, Tensor.from(gw, [1, 5]), this.w.grad!);
    ops.add(this.b.grad!, Tensor.from([gb]), this.b.grad!);
    return { loss, batchSize: rows.length };
  }
  zeroGrad() {
    ops.fill(this.w.grad!, 0);
    ops.fill(this.b.grad!, 0);
  }
  grads() {
    return [this.w.grad!, this.b.grad!];
  }
  evaluate() {
    const rows = Array.from({ length: this.n }, (_, i) => i);
    const z = this.forward(rows);
    let loss = 0;
    rows.forEach((i, k) => {
      const p = 1 / (1 + Math.exp(-z[k]!));
      loss += -(this.y[i] ? Math.log(p) : Math.log(1 - p)) / this.n;
    });
    return { loss, metrics: { accuracy: accuracy(Array.from(z, (v) => (v > 0 ? 1 : 0)), this.y) } };
  }
  save(dir: string, state: TrainerState) {
    this.saved.push(dir);
    writeJsonAtomic(join(dir, 'trainer.json'), { state, w: Array.from(this.w.tensor.toArray()), b: Array.from(this.b.tensor.toArray()) });
    if (this.optimizer) saveOptimizerState(this.optimizer, dir);
  }
}

const tmp = () => mkdtempSync(join(tmpdir(), 'kfac-trainer-'));

describe('Trainer', () => {
  it('the loss falls and the accuracy rises; the log has every step and evaluation', async () => {
    const task = new Blobs();
    const before = task.evaluate();
    const dir = tmp();
    const opt = new optim.SGD([task.w, task.b], { lr: 0.5 });
    const r = await new Trainer(task, opt, { epochs: 3, evalEvery: 12, monitor: 'accuracy', seed: 1, logFile: join(dir, 'log.jsonl'), bestDir: join(dir, 'best') }).fit();
    const after = task.evaluate();
    expect(after.loss).toBeLessThan(before.loss * 0.7);
    expect(after.metrics['accuracy']).toBeGreaterThan(0.85);
    expect(r.state.step).toBe(36);
    const lines = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string });
    expect(lines.filter((l) => l.kind === 'step').length).toBe(36);
    expect(lines.filter((l) => l.kind === 'eval').length).toBe(3);
    expect(existsSync(join(dir, 'best', 'trainer.json'))).toBe(true);
    expect(r.state.best!.value).toBe(Math.max(...r.history.filter((e) => e.kind === 'eval').map((e) => (e as { metrics: Record<string, number> }).metrics['accuracy']!)));
  });

  it('gradient accumulation over two half batches equals one full batch', async () => {
    const a = new Blobs(96, 8);
    const b = new Blobs(96, 16);
    await new Trainer(a, new optim.SGD([a.w, a.b], { lr: 0.3 }), { maxSteps: 1, gradAccumulation: 2, seed: 4 }).fit();
    // Same 16 rows: the two 8-row batches of `a` are the first 16 indices of its permutation.
    const rows = Array.from(a.batches(0, 4)).slice(0, 2).flat();
    b.zeroGrad();
    b.lossAndBackward(rows);
    new optim.SGD([b.w, b.b], { lr: 0.3 }).step();
    const wa = a.w.tensor.toArray();
    const wb = b.w.tensor.toArray();
    for (let j = 0; j < 5; j++) expect(wa[j]).toBeCloseTo(wb[j]!, 6);
  });

  it('stops early when the monitored metric stops improving', async () => {
    const task = new Blobs();
    const scripted = [0.5, 0.6, 0.55, 0.58, 0.59, 0.9];
    let k = 0;
    task.evaluate = () => ({ loss: 1, metrics: { accuracy: scripted[k++] ?? 0 } });
    const r = await new Trainer(task, new optim.SGD([task.w, task.b], { lr: 0.1 }), { epochs: 5, evalEvery: 2, monitor: 'accuracy', patience: 3 }).fit();
    expect(r.stoppedEarly).toBe(true);
    expect(r.state.best).toEqual({ value: 0.6, step: 4 });
    expect(r.state.step).toBe(10);
  });

  it('an interrupt saves a checkpoint; resuming from disk into a fresh model and optimizer reproduces the uninterrupted run bit for bit', async () => {
    const sgd = (t: Blobs) => new optim.SGD([t.w, t.b], { lr: 0.2, momentum: 0.9 });
    const full = new Blobs();
    await new Trainer(full, sgd(full), { epochs: 2, seed: 9 }).fit();

    const part = new Blobs();
    const dir = tmp();
    const opt = sgd(part);
    part.optimizer = opt; // saved beside the weights
    let steps = 0;
    const first = await new Trainer(part, opt, {
      epochs: 2,
      seed: 9,
      interruptDir: join(dir, 'stop'),
      onEvent: (e) => {
        if (e.kind === 'step' && ++steps === 15) process.emit('SIGINT');
      },
    }).fit();
    expect(first.interrupted).toBe(true);
    expect(first.state.step).toBe(15);
    // Everything below comes from the files: a new task (zero weights), a new optimizer (no momentum).
    const saved = JSON.parse(readFileSync(join(dir, 'stop', 'trainer.json'), 'utf8')) as { state: TrainerState; w: number[]; b: number[] };
    expect(saved.state.step).toBe(15);
    const fresh = new Blobs();
    fresh.w.tensor.set(Float32Array.from(saved.w));
    fresh.b.tensor.set(Float32Array.from(saved.b));
    const freshOpt = sgd(fresh);
    loadOptimizerState(freshOpt, join(dir, 'stop'));
    expect(freshOpt.stepCount).toBe(15);
    const resumed = await new Trainer(fresh, freshOpt, { epochs: 2, seed: 9, resume: saved.state }).fit();
    expect(resumed.state.step).toBe(24);
    expect(fresh.w.tensor.toArray()).toEqual(full.w.tensor.toArray());
    expect(fresh.b.tensor.toArray()).toEqual(full.b.tensor.toArray());
  });

  it('yields to the event loop between steps and flags divergence', async () => {
    const task = new Blobs();
    // A callback queued before fit() must run while fit() is still stepping.
    let ran = false;
    let seenAtLastStep = false;
    setImmediate(() => (ran = true));
    await new Trainer(task, new optim.SGD([task.w, task.b], { lr: 0.1 }), {
      maxSteps: 30,
      epochs: 3,
      onEvent: (e) => {
        if (e.kind === 'step' && e.step === 30) seenAtLastStep = ran;
      },
    }).fit();
    expect(seenAtLastStep).toBe(true);
    const bad = new Blobs();
    const orig = bad.lossAndBackward.bind(bad);
    let calls = 0;
    bad.lossAndBackward = (rows) => (++calls === 3 ? { loss: NaN, batchSize: rows.length } : orig(rows));
    const r = await new Trainer(bad, new optim.SGD([bad.w, bad.b], { lr: 0.1 }), { maxSteps: 10 }).fit();
    expect(r.diverged).toBe(true);
    expect(r.state.step).toBe(2);
  });

  it('out of memory mid-run: the OutOfMemoryError names the step or the evaluation it stopped, with the hint', async () => {
    const oom = () => new OutOfMemoryError('matmul: cuda out of memory: asked for 1024 bytes', { argument: 'size' });
    class Failing extends Blobs {
      calls = 0;
      failEval = false;
      override lossAndBackward(rows: number[]) {
        if (++this.calls === 3) throw oom();
        return super.lossAndBackward(rows);
      }
      override evaluate() {
        if (this.failEval) throw oom();
        return super.evaluate();
      }
    }
    const a = new Failing();
    const e = await new Trainer(a, new optim.SGD([a.w, a.b], { lr: 0.1 }), { maxSteps: 5 }).fit().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OutOfMemoryError);
    expect((e as OutOfMemoryError).message.split('\n')[0]).toBe('step 3: matmul: cuda out of memory: asked for 1024 bytes');
    expect((e as OutOfMemoryError).hint).toBe(OOM_HINT);
    const b = new Failing();
    b.calls = -100;
    b.failEval = true;
    const f = await new Trainer(b, new optim.SGD([b.w, b.b], { lr: 0.1 }), { maxSteps: 5, evalEvery: 2 }).fit().catch((x: unknown) => x);
    expect((f as OutOfMemoryError).message.split('\n')[0]).toBe('the evaluation after step 2: matmul: cuda out of memory: asked for 1024 bytes');
    // any other error passes through as it was
    class Other extends Blobs {
      override lossAndBackward(): never {
        throw new RangeError('not memory');
      }
    }
    const c = new Other();
    await expect(new Trainer(c, new optim.SGD([c.w, c.b], { lr: 0.1 }), { maxSteps: 2 }).fit()).rejects.toThrow(/^not memory$/);
  });
});

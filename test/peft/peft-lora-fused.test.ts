/**
 * The fused LoRA branch (nn.setFusions({ lora })) against its reference, the unfused branch:
 * the same output, input gradient, lora_A/lora_B gradients, and the same input and output
 * gradient recorded on lora_B (what K-FAC reads). The finite-difference tests of
 * test/peft/peft-lora.test.ts run with the default switches, so they check the fused path
 * against float64 as well.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { InvalidArgumentError, nn, Tensor } from '../../lib/index.js';
import { Linear } from '../../lib/nn/layers.js';
import { Module } from '../../lib/nn/module.js';
import { applyLora } from '../../lib/peft/index.js';
import { expectClose, input } from '../support/nn-helpers.js';

class Net extends Module {
  readonly proj: Linear;
  constructor(din: number, dout: number, layout: 'linear' | 'conv1d') {
    super();
    this.proj = this.registerModule('proj', new Linear(din, dout, { layout, seed: 5 }));
  }
}

interface Run {
  y: Float32Array;
  dx: Float32Array;
  dA: Float32Array;
  dB: Float32Array;
  h: Float32Array;
  g: Float32Array;
}

function run(fused: boolean, layout: 'linear' | 'conv1d', dropout: number): Run {
  nn.setFusions({ lora: fused });
  const [din, dout, r] = [13, 11, 3];
  const net = new Net(din, dout, layout);
  const br = applyLora(net, { targetModules: 'proj', r, alpha: 7, dropout, seed: 9 }).branches[0]!;
  br.loraB.weight.tensor.set(input(dout * r, 31).f32);
  net.train(true);
  const out: Run[] = [];
  for (let step = 0; step < 2; step++) {
    // twice: the second step reuses workspaces and views
    net.zeroGrad();
    const y = net.proj.forward(Tensor.from(input(2 * 5 * din, 32 + step).f32, [2, 5, din])).toArray();
    const dx = net.proj.backward(Tensor.from(input(2 * 5 * dout, 34 + step).f32, [2, 5, dout]))!.toArray();
    out.push({ y, dx, dA: br.loraA.weight.grad!.toArray(), dB: br.loraB.weight.grad!.toArray(), h: br.loraB.input!.toArray(), g: br.loraB.outputGrad!.toArray() });
  }
  net.dispose();
  return out[1]!;
}

describe('fused LoRA branch', () => {
  afterAll(() => nn.setFusions({ lora: true }));

  it.each([
    ['linear', 0],
    ['conv1d', 0],
    ['linear', 0.3],
  ] as const)('%s base, dropout %s: matches the unfused branch, including what lora_B records for K-FAC', (layout, dropout) => {
    const ref = run(false, layout, dropout);
    const got = run(true, layout, dropout);
    expectClose(got.y, ref.y, 'y', 1e-5, 1e-5);
    expectClose(got.dx, ref.dx, 'dx', 1e-5, 1e-5);
    expectClose(got.dA, ref.dA, 'dA', 1e-5, 1e-5);
    expectClose(got.dB, ref.dB, 'dB', 1e-5, 1e-5);
    expectClose(got.h, ref.h, 'lora_B input', 0, 0);
    expectClose(got.g, ref.g, 'lora_B output gradient (s·g)', 1e-6, 1e-6);
    expect(got.g.some((v) => v !== 0)).toBe(true);
  });

  it('switches are checked', () => {
    expect(() => nn.setFusions({ nope: true } as never)).toThrow(InvalidArgumentError);
    expect(() => nn.setFusions({ lora: 1 } as never)).toThrow(InvalidArgumentError);
    expect(nn.setFusions({ lora: false }).lora).toBe(false);
    expect(nn.fusions().lora).toBe(false);
  });
});

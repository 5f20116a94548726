// node bench/lora-fusion.mjs [threads]: the fused LoRA branch (nn.setFusions({ lora })) against the unfused one.
// LoRA branch forward+backward on one BERT-small projection ([8, 128, 512] → 512, r = 8),
// fused and unfused alternating in blocks; median ms per branch forward+backward (the base GEMMs left out).
import { loadavg } from 'node:os';

import { Tensor, nn, setNumThreads } from '../dist/index.js';
import { Linear } from '../dist/nn/layers.js';
import { Module } from '../dist/nn/module.js';
import { applyLora } from '../dist/peft/index.js';
setNumThreads(+(process.argv[2] ?? 1));
class Net extends Module { constructor() { super(); this.proj = this.registerModule('proj', new Linear(512, 512, { seed: 1 })); } }
const net = new Net();
const br = applyLora(net, { targetModules: 'proj', r: 8, alpha: 16 }).branches[0];
br.loraB.weight.tensor.set(Tensor.randn([512, 8], { seed: 3 }).toArray());
net.train(true);
const x = Tensor.randn([8, 128, 512], { seed: 4 }), g = Tensor.randn([8, 128, 512], { seed: 5 });
const res = { off: [], on: [] };
const before = loadavg().map((l) => l.toFixed(2)).join(' ');
const y = Tensor.zeros([8, 128, 512]), dx = Tensor.zeros([8, 128, 512]);
const step = () => { br.forward(x, y); br.backward(g, dx); };
for (let r = 0; r < 40; r++)
  for (const k of ['off', 'on']) {
    nn.setFusions({ lora: k === 'on' });
    step();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 5; i++) step();
    res[k].push(Number(process.hrtime.bigint() - t0) / 5e6);
  }
const med = (v) => [...v].sort((p, q) => p - q)[v.length >> 1];
const ratios = res.off.map((o, i) => o / res.on[i]);
console.log(`threads ${process.argv[2] ?? 1}: unfused ${med(res.off).toFixed(2)} ms, fused ${med(res.on).toFixed(2)} ms, median per-round unfused/fused ${med(ratios).toFixed(3)}; load ${before} → ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
nn.setFusions({ lora: true });

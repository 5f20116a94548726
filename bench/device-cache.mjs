// The caching device allocator over a K-FAC + LoRA training step: tensor allocations and raw
// device allocations (cudaMalloc, or the host test device's raw blocks) per timed step, reserved
// and peak bytes, with caching on and off (KFAC_CUDA_CACHING=0), with and without gradient
// checkpointing. On a machine without a GPU the cuda device is the CUDA emulation (host memory
// behind the same allocator code): the counts are the allocator's, the bytes the model's; no speed.
// Run: npm run build:ts && node bench/device-cache.mjs [--shape llama-125m --layers 2 --hidden 64 --seq 16 --batch 2]
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';

const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? process.argv[i + 1] : d; };
const o = { shape: arg('shape', 'llama-125m'), layers: Number(arg('layers', 2)), hidden: Number(arg('hidden', 64)), vocab: Number(arg('vocab', 256)), seq: Number(arg('seq', 16)), batch: Number(arg('batch', 2)) };

if (process.argv.includes('--child')) {
  const { native } = await import('../dist/native/loader.js');
  const { runTrainStep } = await import('../dist/bench/train-step.js');
  const gpu = native().cuda !== undefined && native().deviceAvailable('cuda');
  if (!gpu) native()._cudaEmulation();
  const r = await runTrainStep({ ...o, device: 'cuda', optimizer: 'kfac', dtype: 'float32', checkpointing: process.argv.includes('--ckpt'), warmup: 2, steps: 3, peakSize: 64, peer: undefined, progress() {} });
  console.log(JSON.stringify({ device: gpu ? r.deviceName : 'CUDA emulation (host memory)', ...r.deviceCache, peak: r.peakMemoryBytes }));
  process.exit(0);
}

console.log(`K-FAC + LoRA step of ${o.shape} (${o.layers} layers, hidden ${o.hidden}), batch ${o.batch} × seq ${o.seq}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('checkpointing | caching | tensors/step | raw allocs/step | reserved MiB | peak allocated MiB | device');
for (const ckpt of [false, true])
  for (const caching of ['1', '0']) {
    const args = [process.argv[1], '--child', ...(ckpt ? ['--ckpt'] : []), ...process.argv.slice(2)];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, KFAC_CUDA_CACHING: caching } });
    if (r.status !== 0) { console.error(r.stderr); process.exit(1); }
    const j = JSON.parse(r.stdout.trim().split('\n').pop());
    const mib = (b) => (b / 2 ** 20).toFixed(2);
    console.log(`${ckpt ? 'on ' : 'off'} | ${caching === '1' ? 'on ' : 'off'} | ${j.allocationsPerStep.toFixed(1)} | ${j.rawAllocationsPerStep.toFixed(1)} | ${mib(j.reservedBytes)} | ${mib(j.peak)} | ${j.device}`);
  }

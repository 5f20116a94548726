// The reader fuzzer's child process: builds the seed inputs, and runs one reader on one input
// folder per message. It answers 'ok' or 'typed' (a KfacError), 'untyped' for any other throw,
// and 'alloc' when the case raised the process's peak memory by more than the cap. A crash or a
// hang is seen by the parent (the process dies, or does not answer in time).
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const lib = await import(join(root, 'dist', 'index.js'));
const { KfacError, io, models, optim, peft, kfac, setNumThreads } = lib;
setNumThreads(1);

/** More than this much extra peak memory for one small input is unbounded allocation. */
const ALLOC_CAP_KB = Number(process.env.FUZZ_ALLOC_CAP_MB ?? 256) * 1024;
const FIX = join(root, 'test', 'fixtures');
const read = (...p) => new Uint8Array(readFileSync(join(FIX, ...p)));

// ---------------------------------------------------------------- tiny models and optimizers
const tinyLlama = () => models.createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 5 });
const LORA = { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8, dropout: 0, seed: 3 };
const batch = (() => {
  const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 11 + 3) % 32);
  return { inputIds: ids, shape: [3, 8], labels: ids };
})();

function makeOptimizer(kind, m) {
  if (kind === 'kfac') {
    const layers = peft.kfacLayersForLora(m);
    return new kfac.KFAC(layers, peft.untrackedParameters(m, layers), { lr: 0.1, damping: 1e-2, inverseEvery: 2, newtonClip: { maxNorm: 1 } });
  }
  const params = m.parameters().filter((p) => p.trainable);
  return kind === 'adamw' ? new optim.AdamW(params, { lr: 1e-2 }) : new optim.SGD(params, { lr: 1e-2, momentum: 0.9 });
}

function train(m, opt, steps) {
  for (let i = 0; i < steps; i++) {
    m.zeroGrad();
    m.forward(batch);
    m.backward();
    opt.step({ batchSize: 3 });
  }
}

/** Reads every file of a folder written by a saver into {name: bytes}. */
function folder(dir) {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
}

// ---------------------------------------------------------------- synthetic llama2.c files
function llama2cBin({ dim, hidden, layers, heads, kv, vocab, seq, shared }) {
  const head = dim / heads;
  const kvDim = kv * head;
  const per = dim + dim * dim + 2 * kvDim * dim + dim * dim + dim + 3 * hidden * dim;
  const floats = vocab * dim + layers * per + dim + seq * head + (shared ? 0 : vocab * dim);
  const out = new Uint8Array(28 + 4 * floats);
  const dv = new DataView(out.buffer);
  [dim, hidden, layers, heads, kv, shared ? vocab : -vocab, seq].forEach((v, i) => dv.setInt32(4 * i, v, true));
  for (let i = 0; i < floats; i++) dv.setFloat32(28 + 4 * i, Math.sin(i * 0.37) * 0.1, true);
  return out;
}

function tokenizerBin(extra) {
  const enc = new TextEncoder();
  const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`), ...extra];
  const bytes = pieces.map((p) => enc.encode(p));
  const maxLen = Math.max(...bytes.map((b) => b.length));
  const out = new Uint8Array(4 + bytes.reduce((n, b) => n + 8 + b.length, 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, maxLen, true);
  let at = 4;
  bytes.forEach((b, i) => {
    dv.setFloat32(at, i < 259 ? 0 : -i, true);
    dv.setUint32(at + 4, b.length, true);
    out.set(b, at + 8);
    at += 8 + b.length;
  });
  return out;
}

// ---------------------------------------------------------------- seeds
function seeds(target, scratch) {
  const st = (...p) => ({ name: p.join('/'), files: { 'x.safetensors': read('io', 'safetensors', ...p) } });
  switch (target) {
    case 'safetensors':
      return [
        st('reference_f32.safetensors'),
        st('reference_f16.safetensors'),
        st('reference_bf16.safetensors'),
        st('mixed_dtypes.safetensors'),
        st('malformed', 'well-formed.safetensors'),
      ];
    case 'sharded': {
      const dir = join(FIX, 'io', 'safetensors', 'sharded');
      return [{ name: 'sharded', files: folder(dir) }];
    }
    case 'config': {
      const out = [];
      for (const v of ['v4', 'v5']) for (const f of readdirSync(join(FIX, 'io', 'configs', v)).sort()) out.push({ name: `${v}/${f}`, files: { 'config.json': read('io', 'configs', v, f) } });
      for (const m of readdirSync(join(FIX, 'models')).sort()) out.push({ name: `models/${m}`, files: { 'config.json': read('models', m, 'config.json') } });
      return out;
    }
    case 'model':
      return ['llama-gqa', 'bert-cls', 'gpt2-lm'].map((m) => ({ name: m, files: { 'config.json': read('models', m, 'config.json'), 'model.safetensors': read('models', m, 'model.safetensors') } }));
    case 'tokenizer': {
      const cfg = new TextEncoder().encode(JSON.stringify({ model_max_length: 32, pad_token: '<pad>' }));
      const out = [];
      for (const f of ['bytelevel-bpe.json', 'wordlevel-roberta.json', 'wordlevel-template.json']) {
        out.push({ name: f, files: { 'tokenizer.json': read('io', 'tokenizer', f) } });
        out.push({ name: `${f}+config`, files: { 'tokenizer.json': read('io', 'tokenizer', f), 'tokenizer_config.json': cfg } });
      }
      return out;
    }
    case 'llama2c':
      return [
        { name: 'shared', files: { 'model.bin': llama2cBin({ dim: 8, hidden: 12, layers: 2, heads: 2, kv: 1, vocab: 12, seq: 4, shared: true }) } },
        { name: 'unshared', files: { 'model.bin': llama2cBin({ dim: 4, hidden: 6, layers: 1, heads: 2, kv: 2, vocab: 10, seq: 3, shared: false }) } },
      ];
    case 'llama2c-tokenizer':
      return [
        { name: 'bytes+merges', files: { 'tokenizer.bin': tokenizerBin([' ', 'a', 't', 'h', 'e', ' t', 'th', 'he', ' the', 'é', ' a']) } },
        { name: 'bytes', files: { 'tokenizer.bin': tokenizerBin([' ']) } },
      ];
    case 'adapter': {
      const out = [];
      const cfgs = [
        { name: 'list', cfg: LORA },
        { name: 'regex-rslora', cfg: { ...LORA, targetModules: /.*\.(k|o)_proj/, r: 2, useRslora: true } },
      ];
      for (const { name, cfg } of cfgs) {
        const m = tinyLlama();
        peft.applyLora(m, cfg);
        const dir = join(scratch, `adapter-${name}`);
        peft.saveAdapter(m, dir);
        m.dispose();
        out.push({ name, variant: name, files: folder(dir) });
      }
      return out;
    }
    case 'optimizer':
      return ['adamw', 'sgd', 'kfac'].map((kind) => {
        const m = tinyLlama();
        peft.applyLora(m, LORA);
        const opt = makeOptimizer(kind, m);
        train(m, opt, 2);
        const dir = join(scratch, `opt-${kind}`);
        peft.saveOptimizerState(opt, dir);
        m.dispose();
        return { name: kind, variant: kind, files: folder(dir) };
      });
    case 'checkpoint': {
      const m = tinyLlama();
      peft.applyLora(m, { ...LORA, dropout: 0.1 });
      const opt = makeOptimizer('kfac', m);
      train(m, opt, 3);
      const dir = join(scratch, 'ckpt');
      peft.saveCheckpoint(dir, { model: m, optimizer: opt, extra: { step: 3, epoch: 0 } });
      m.dispose();
      return [{ name: 'kfac+lora', variant: 'kfac', files: folder(dir) }];
    }
    default:
      throw new Error(`unknown target ${target}`);
  }
}

// ---------------------------------------------------------------- the readers under test
function readAll(src) {
  for (const name of src.names) {
    try {
      src.readFloat32(name);
    } catch (e) {
      if (!(e instanceof KfacError && e.code === 'ERR_DTYPE')) throw e; // other dtypes open but do not convert
    }
  }
}

const TEXTS = ['Hello world, héllo! the cat', '', 'a'.repeat(200), '日本語 \u0000 \ud83d\ude00'];

function run(target, dir, variant) {
  switch (target) {
    case 'safetensors':
      return readAll(io.SafetensorsFile.open(join(dir, 'x.safetensors')));
    case 'sharded':
      return readAll(io.openSafetensors(dir));
    case 'config': {
      const c = io.loadModelConfig(join(dir, 'config.json'));
      const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      models.fromModelConfig(c, raw, join(dir, 'config.json'));
      return;
    }
    case 'model':
      models.loadModel(dir).dispose();
      return;
    case 'tokenizer': {
      const tk = io.Tokenizer.fromFile(dir);
      for (const t of TEXTS) {
        const e = tk.encode(t);
        tk.decode(e.ids);
        tk.encode(t, { pair: 'second text', maxLength: 12, truncation: true });
      }
      if (tk.padTokenId !== undefined) tk.encodeBatch(TEXTS, { padding: 'longest', maxLength: 16, truncation: true });
      return;
    }
    case 'llama2c': {
      const ck = io.Llama2cCheckpoint.open(join(dir, 'model.bin'));
      readAll(ck);
      models.fromModelConfig(ck.config);
      return;
    }
    case 'llama2c-tokenizer': {
      const tk = io.Llama2cTokenizer.open(join(dir, 'tokenizer.bin'));
      for (const t of TEXTS) tk.decode(tk.encode(t, { eos: true }));
      io.Llama2cTokenizer.open(join(dir, 'tokenizer.bin'), tk.vocabSize);
      return;
    }
    case 'adapter': {
      const m = tinyLlama();
      try {
        peft.loadAdapter(m, dir);
      } finally {
        m.dispose();
      }
      return;
    }
    case 'optimizer':
    case 'checkpoint': {
      const m = tinyLlama();
      try {
        peft.applyLora(m, target === 'checkpoint' ? { ...LORA, dropout: 0.1 } : LORA);
        const opt = makeOptimizer(variant, m);
        if (target === 'optimizer') peft.loadOptimizerState(opt, dir);
        else peft.loadCheckpoint(dir, { model: m, optimizer: opt });
        train(m, opt, 1); // the loaded state must be usable
      } finally {
        m.dispose();
      }
      return;
    }
    default:
      throw new Error(`unknown target ${target}`);
  }
}

process.on('message', (msg) => {
  const reply = (r) => process.send({ id: msg.id, ...r });
  if (msg.op === 'seeds') {
    try {
      const list = seeds(msg.target, msg.dir);
      const out = list.map((s, i) => {
        const d = join(msg.dir, 'seeds', String(i));
        for (const [rel, bytes] of Object.entries(s.files)) {
          mkdirSync(dirname(join(d, rel)), { recursive: true });
          writeFileSync(join(d, rel), bytes);
        }
        return { name: s.name, variant: s.variant ?? null, dir: d, files: Object.keys(s.files) };
      });
      reply({ status: 'ok', seeds: out });
    } catch (e) {
      reply({ status: 'untyped', name: e?.name, message: String(e?.message ?? e), stack: e?.stack });
    }
    return;
  }
  const before = process.resourceUsage().maxRSS;
  let res;
  try {
    run(msg.target, msg.dir, msg.variant);
    res = { status: 'ok' };
  } catch (e) {
    res =
      e instanceof KfacError
        ? { status: 'typed', name: e.name, code: e.code, message: e.message }
        : { status: 'untyped', name: e?.constructor?.name ?? typeof e, message: String(e?.message ?? e), stack: e?.stack };
  }
  const grew = process.resourceUsage().maxRSS - before;
  if (grew > ALLOC_CAP_KB) res = { status: 'alloc', name: res.name ?? 'ok', message: `peak memory grew by ${Math.round(grew / 1024)} MB on one input (${res.status}: ${res.message ?? ''})` };
  reply(res);
});
process.send({ ready: true });

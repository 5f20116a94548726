/**
 * The demo's data and model: the State of the Union corpus reader (dedupe, two speeches in one
 * year), paragraphs, the BPE tokenizer.json through Tokenizer, a miniature pretraining that
 * lowers the loss and reloads with identical logits, the cache (reuse, rebuild on other
 * settings or a corrupted file, nothing half-written), and the task split by speech.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { FileError, FormatError, InvalidArgumentError } from '../../lib/errors.js';
import { demo, io, models } from '../../lib/index.js';
import type { PretrainHyperparameters, Speech } from '../../lib/demo/index.js';

const { readSotu, splitParagraphs, splitSentences, paragraphsOf, trainBpe, tokenizerJson, tokenizerConfigJson, BpeEncoder } = demo;

let all: Speech[];
let few: Speech[];
let root: string;
const TINY: Partial<PretrainHyperparameters> = { vocabSize: 128, hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 2, seqLen: 32, batchSize: 4, steps: 12, lr: 1e-2, warmup: 0 };
const TINY_TASK = { trainPerClass: 8, devPerClass: 4, devFraction: 0.4 };
const quiet = () => {};

beforeAll(() => {
  all = readSotu();
  const years = new Set([1790, 1791, 1792, 1870, 1871, 1872, 1950, 1951, 1952, 1990, 1991, 1992]);
  few = all.filter((s) => years.has(s.year));
  root = mkdtempSync(join(tmpdir(), 'kfac-demo-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('State of the Union corpus', () => {
  it('reads 233 speeches once each (.json and .txt copies merged), two in 1953 and 1961, known parties, normalised text', () => {
    expect(all.length).toBe(233);
    expect(new Set(all.map((s) => s.id)).size).toBe(233);
    expect(all[0]!.year).toBe(1790);
    expect(all.at(-1)!.year).toBe(2021);
    for (const y of [1953, 1961]) {
      const two = all.filter((s) => s.year === y);
      expect(two.length).toBe(2);
      expect(new Set(two.map((s) => s.party))).toEqual(new Set(['d', 'r']));
    }
    expect(all.find((s) => s.id === '1961_john_f_kennedy_d')!.president).toBe('John F Kennedy');
    for (const s of all) {
      expect(Object.keys(demo.PARTIES)).toContain(s.party);
      expect(s.text).not.toMatch(/\s\s|[\u2018-\u201d\u2013\u2014]/);
    }
    const count = (p: string) => all.filter((s) => s.party === p).length;
    expect([count('d'), count('r')]).toEqual([90, 92]);
    for (let i = 1; i < all.length; i++) expect(all[i]!.year).toBeGreaterThanOrEqual(all[i - 1]!.year);
  });

  it('prefers the .json over a .txt copy, uses a lone .txt, ignores other names; bad files are typed errors', () => {
    const dir = join(root, 'corpus');
    mkdirSync(dir);
    writeFileSync(join(dir, '1900_jane_doe_d.json'), JSON.stringify({ year: 1900, name: 'Jane Doe', party: 'Democratic', text: 'From the JSON.  Two\nspaces’ gone.' }));
    writeFileSync(join(dir, '1900_jane_doe_d.txt'), 'From the text copy.');
    writeFileSync(join(dir, '1901_john_roe_r.txt'), 'Only a text file.');
    writeFileSync(join(dir, 'README.md'), 'not a speech');
    const got = readSotu(dir);
    expect(got.map((s) => [s.id, s.president, s.party, s.text])).toEqual([
      ['1900_jane_doe_d', 'Jane Doe', 'd', "From the JSON. Two spaces' gone."],
      ['1901_john_roe_r', 'John Roe', 'r', 'Only a text file.'],
    ]);
    writeFileSync(join(dir, '1902_x_y_zz.txt'), 'Unknown party.');
    expect(() => readSotu(dir)).toThrow(FormatError);
    rmSync(join(dir, '1902_x_y_zz.txt'));
    writeFileSync(join(dir, '1903_x_y_d.json'), '{not json');
    expect(() => readSotu(dir)).toThrow(FormatError);
    expect(() => readSotu(join(root, 'missing'))).toThrow(FileError);
  });

  it('splits sentences (not after Mr. or initials) and groups them into deterministic paragraphs', () => {
    expect(splitSentences('Mr. Speaker, we met. The U.S. Senate agreed! "Yes," he said. 1990 was good.')).toEqual([
      'Mr. Speaker, we met.',
      'The U.S. Senate agreed!',
      '"Yes," he said.',
      '1990 was good.',
    ]);
    const text = all.find((s) => s.year === 1863)!.text;
    const a = splitParagraphs(text);
    expect(splitParagraphs(text)).toEqual(a);
    expect(a.length).toBeGreaterThan(10);
    expect(a.every((p) => p.length >= 120)).toBe(true);
    // With nothing dropped, the paragraphs are the text.
    expect(splitParagraphs(text, { minChars: 0 }).join(' ')).toBe(text);
    expect(() => splitParagraphs(text, { targetChars: 0 })).toThrow(InvalidArgumentError);
    const paras = paragraphsOf(few);
    expect(new Set(paras.map((p) => p.speechId))).toEqual(new Set(few.map((s) => s.id)));
  });
});

describe('BPE tokenizer.json', () => {
  it('loads through Tokenizer from a folder, round-trips corpus text, matches the fast encoder, and is deterministic', () => {
    const texts = paragraphsOf(few).map((p) => p.text);
    const bpe = trainBpe(texts, { vocabSize: 300 });
    expect(bpe.vocab.length).toBe(300);
    expect(bpe.vocab.slice(0, 4)).toEqual(['<pad>', '<unk>', '<s>', '</s>']);
    expect(trainBpe(texts, { vocabSize: 300 })).toEqual(bpe);
    const dir = join(root, 'tok');
    mkdirSync(dir);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(bpe)));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfigJson({ modelMaxLength: 64 })));
    const tk = io.Tokenizer.fromFile(dir);
    expect([tk.vocabSize, tk.padTokenId, tk.modelMaxLength]).toEqual([300, 0, 64]);
    const enc = new BpeEncoder(bpe);
    const sample = all.filter((_, i) => i % 20 === 0).flatMap((s) => splitParagraphs(s.text).slice(0, 3));
    for (const t of [...texts.slice(0, 40), ...sample]) {
      const e = tk.encode(t, { truncation: false });
      expect(e.ids[0]).toBe(demo.BOS_ID);
      expect(e.ids.at(-1)).toBe(demo.EOS_ID);
      expect(e.ids.slice(1, -1)).toEqual(enc.encode(t));
      expect(tk.decode(e.ids)).toBe(t);
    }
    const b = tk.encodeBatch(['The Congress', 'The state of the Union is strong'], { padding: 'longest' });
    expect(b.ids[0]!.at(-1)).toBe(0);
    expect(b.attentionMask[0]!.at(-1)).toBe(0);
    expect(tk.encode('snow ☃', { truncation: false }).ids).toContain(demo.UNK_ID);
  });

  it('is character-level when the vocabulary is the alphabet', () => {
    const texts = paragraphsOf(few.slice(0, 2)).map((p) => p.text);
    const bpe = trainBpe(texts, { vocabSize: 5 });
    expect(bpe.merges).toEqual([]);
    const tk = io.Tokenizer.fromJSON(tokenizerJson(bpe), tokenizerConfigJson());
    const e = tk.encode(texts[0]!, { addSpecialTokens: false, truncation: false });
    expect(e.ids.length).toBe(texts[0]!.length + 1); // every character, plus the leading "▁"
    expect(tk.decode(e.ids)).toBe(texts[0]);
  });
});

describe('pretraining', () => {
  it('lowers the loss of a tiny model; the saved folder reloads with identical logits', async () => {
    const texts = paragraphsOf(few).map((p) => p.text);
    const bpe = trainBpe(texts, { vocabSize: 128 });
    const enc = new BpeEncoder(bpe);
    const stream = demo.tokenStream(texts.map((t) => enc.encode(t)));
    const hp = { ...demo.DEMO_HYPERPARAMETERS, ...TINY, steps: 300, hiddenSize: 32, intermediateSize: 64, lr: 1e-2, warmup: 10 } as PretrainHyperparameters;
    const cut = Math.floor(stream.length * 0.8);
    const run = await demo.pretrain({ hp, train: stream.subarray(0, cut), held: stream.subarray(cut) });
    try {
      // Seen: 4.86 → 3.52 in 300 steps (0.3 s); held-out 3.64 against the unigram's 4.24.
      expect(run.trainLoss).toBeLessThan(run.firstLoss - 1);
      expect(run.heldOutLoss).toBeLessThan(run.unigramLoss - 0.3);
      const dir = join(root, 'saved');
      for (const [rel, bytes] of demo.modelFiles(run.model, run.configJson, bpe, hp.seqLen)) {
        mkdirSync(join(dir, rel, '..'), { recursive: true });
        writeFileSync(join(dir, rel), bytes);
      }
      using back = models.loadModel(join(dir, 'model'));
      expect(back.loadReport.fresh).toEqual([]);
      expect(back.config).toEqual(run.model.config);
      const ids = stream.slice(0, 2 * hp.seqLen);
      const batch = { inputIds: ids, shape: [2, hp.seqLen] as const };
      expect(back.logits(batch)).toEqual(run.model.logits(batch));
      using cls = models.loadModel(join(dir, 'model'), { task: 'sequence-classification', numLabels: 4 });
      expect(cls.loadReport.fresh).toEqual(['score.weight']);
      expect(demo.sampleText(run.model, bpe, 0, 8).startsWith('The state of the Union')).toBe(true);
    } finally {
      run.model.dispose();
    }
  });

  it('refuses bad hyperparameters and stops on an aborted signal without writing anything', async () => {
    const cacheDir = join(root, 'aborted');
    await expect(demo.prepareDemo({ cacheDir, speeches: few, hyperparameters: { ...TINY, hiddenSize: 15 }, onProgress: quiet })).rejects.toThrow(InvalidArgumentError);
    await expect(demo.prepareDemo({ cacheDir, hyperparameters: { hidden: 64 } as never, onProgress: quiet })).rejects.toThrow(/hyperparameters\.hidden/);
    await expect(demo.prepareDemo({ cacheDir, seed: -1 })).rejects.toThrow(InvalidArgumentError);
    await expect(
      demo.prepareDemo({ cacheDir, speeches: few, hyperparameters: TINY, task: TINY_TASK, signal: AbortSignal.abort(), onProgress: quiet }),
    ).rejects.toThrow(demo.AbortedError);
    // Aborted in the middle of pretraining (as a Ctrl-C handler would): it stops at the next step.
    const ac = new AbortController();
    let last = 0;
    const onProgress = (p: { phase: string; step: number }) => {
      if (p.phase !== 'pretrain') return;
      last = p.step;
      if (p.step === 3) ac.abort();
    };
    await expect(demo.prepareDemo({ cacheDir, speeches: few, hyperparameters: TINY, task: TINY_TASK, signal: ac.signal, onProgress })).rejects.toThrow(demo.AbortedError);
    expect(last).toBe(3);
    expect(() => readdirSync(cacheDir)).toThrow();
  });
});

describe('prepareDemo cache', () => {
  it('builds once, reuses an intact cache, rebuilds on other settings or a corrupted file', async () => {
    const cacheDir = join(root, 'cache');
    const opts = { cacheDir, speeches: few, hyperparameters: TINY, task: TINY_TASK, onProgress: quiet };
    // What an interrupted build of a process that is gone left behind: swept, never used.
    mkdirSync(join(cacheDir, `.${demo.CACHE_NAME}.tmp-4194305-1`, 'model'), { recursive: true });
    writeFileSync(join(cacheDir, `.${demo.CACHE_NAME}.tmp-4194305-1`, 'model', 'config.json'), '{');
    const a = await demo.prepareDemo(opts);
    expect(a.reused).toBe(false);
    expect(a.modelDir).toBe(join(cacheDir, demo.CACHE_NAME, 'model'));
    expect(readdirSync(a.modelDir).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(a.task).toEqual(JSON.parse(readFileSync(join(a.dataDir, 'task.json'), 'utf8')));
    expect(a.task.numLabels).toBe(4);
    expect(readFileSync(join(a.dataDir, 'train.tsv'), 'utf8').split('\n')[0]).toBe('sentence\tlabel');
    const data = demo.loadTaskFolder(a.dataDir);
    expect([data.train.length, data.dev.length]).toEqual([32, 16]);
    expect(new Set(data.train.map((e) => e.label))).toEqual(new Set([0, 1, 2, 3]));
    const pre = a.manifest['pretraining'] as Record<string, number>;
    expect(pre['heldOutLoss']).toBeGreaterThan(0);
    using m = models.loadModel(a.modelDir);
    expect(m.config.vocabSize).toBe(128);

    const b = await demo.prepareDemo(opts);
    expect(b.reused).toBe(true);
    expect(b.manifest['created']).toBe(a.manifest['created']);

    const c = await demo.prepareDemo({ ...opts, hyperparameters: { ...TINY, steps: 13 } });
    expect(c.reused).toBe(false);
    expect((c.manifest['hyperparameters'] as PretrainHyperparameters).steps).toBe(13);

    const weights = join(c.modelDir, 'model.safetensors');
    const original = readFileSync(weights);
    const bytes = Buffer.from(original);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(weights, bytes);
    const key = c.manifest['key'];
    expect(demo.checkCache(join(cacheDir, demo.CACHE_NAME), key).reason).toMatch(/corrupted/);
    const d = await demo.prepareDemo({ ...opts, hyperparameters: { ...TINY, steps: 13 } });
    expect(d.reused).toBe(false);
    expect(demo.checkCache(join(cacheDir, demo.CACHE_NAME), key).manifest).not.toBeNull();
    // The same settings give the same weights; nothing temporary is left behind.
    expect(readFileSync(weights).equals(original)).toBe(true);
    expect(readdirSync(cacheDir)).toEqual([demo.CACHE_NAME]);
  });

  it('finds its root in KFAC_PEFT_CACHE, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(demo.defaultCacheRoot({ KFAC_PEFT_CACHE: '/c', XDG_CACHE_HOME: '/x' })).toBe('/c');
    expect(demo.defaultCacheRoot({ XDG_CACHE_HOME: '/x' })).toBe(join('/x', 'kfac-peft'));
    expect(demo.defaultCacheRoot({})).toMatch(/\.cache[/\\]kfac-peft$/);
  });
});

describe('fine-tuning task', () => {
  it('splits by speech, balances the labels, and keeps the dev speeches out of pretraining', () => {
    const t = demo.buildTask(all);
    expect(t.task).toMatchObject({ name: 'sotu-era', numLabels: 4, metrics: ['accuracy'] });
    expect([t.train.length, t.dev.length]).toEqual([2048, 256]);
    for (const [rows, n] of [[t.train, 512], [t.dev, 64]] as const) for (let c = 0; c < 4; c++) expect(rows.filter((r) => r.label === c).length).toBe(n);
    const trainIds = new Set(t.train.map((r) => r.speechId));
    for (const r of t.dev) {
      expect(trainIds.has(r.speechId)).toBe(false);
      expect(t.devSpeeches.has(r.speechId)).toBe(true);
    }
    for (const id of t.trainSpeeches) expect(t.devSpeeches.has(id)).toBe(false);
    const { pre, held } = demo.pretrainingText(all, t.devSpeeches);
    expect(pre.some((p) => t.devSpeeches.has(p.speechId))).toBe(false);
    expect(held.every((p) => t.devSpeeches.has(p.speechId))).toBe(true);
    const devTexts = new Set(t.dev.map((r) => r.sentence));
    expect(pre.some((p) => devTexts.has(p.text))).toBe(false);
    expect(demo.buildTask(all)).toEqual(t);
    const tsv = demo.toTsv(t.dev).split('\n');
    expect(tsv[0]).toBe('sentence\tlabel');
    expect(tsv.slice(1, -1).every((l) => l.split('\t').length === 2)).toBe(true);
  });

  it('party: Democratic vs Republican from 1900', () => {
    const t = demo.buildTask(all, { kind: 'party', trainPerClass: 64, devPerClass: 16 });
    expect(t.task.labels).toEqual(['Democratic', 'Republican']);
    const byId = new Map(all.map((s) => [s.id, s]));
    for (const r of [...t.train, ...t.dev]) {
      const s = byId.get(r.speechId)!;
      expect(s.year).toBeGreaterThanOrEqual(1900);
      expect(s.party).toBe(r.label === 0 ? 'd' : 'r');
    }
    expect(() => demo.buildTask(all, { kind: 'nope' as 'era' })).toThrow(InvalidArgumentError);
  });

  it('a task folder with a label outside its classes, or without a task.json, is a FormatError', () => {
    const dir = join(root, 'badtask');
    mkdirSync(dir);
    expect(() => demo.loadTaskFolder(dir)).toThrow(FormatError);
    writeFileSync(join(dir, 'task.json'), JSON.stringify({ name: 't', numLabels: 2, labels: ['a', 'b'], metrics: ['accuracy'], source: 's' }));
    writeFileSync(join(dir, 'train.tsv'), 'sentence\tlabel\nok\t1\n');
    writeFileSync(join(dir, 'dev.tsv'), 'sentence\tlabel\nbad\t2\n');
    expect(() => demo.loadTaskFolder(dir)).toThrow(/label 2 is not one of the 2 classes/);
  });
});

it('the demo library does not reach into the command line (lib/demo imports nothing from lib/cli)', () => {
  const dir = join(import.meta.dirname, '..', '..', 'lib', 'demo');
  for (const f of readdirSync(dir)) expect(readFileSync(join(dir, f), 'utf8'), f).not.toMatch(/from '\.\.\/cli\//);
});

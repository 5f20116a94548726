/**
 * bench/e2e/grid-map.mjs on a folder of fake runs written the way `compare` writes them (run.json,
 * config.json, metrics.jsonl under <family>/<part>/runs/<name>/): the Markdown numbers, the
 * diverged marks (the trainer's flag, a blown-up loss), the default outline and a well-formed SVG;
 * and a 2-step smoke of bench/e2e/grid.sh on stories260K feeding it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { DEFAULTS } from '../../lib/train/run.js';
import { SHARED_DATA, sharedData, skipNote } from '../support/shared-data.js';
import { ROOT } from '../support/tiny-cli.js';
import { xmlProblems } from '../support/xml.js';

const MAP = join(ROOT, 'bench', 'e2e', 'grid-map.mjs');
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'kfac-grid-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

interface Fake {
  optimizer: string;
  lr: number;
  damping?: number;
  final: number;
  losses?: number[];
  diverged?: boolean;
  interrupted?: boolean;
}

function writeRun(dir: string, r: Fake): void {
  const name = `${r.optimizer} lr=${r.lr}${r.damping !== undefined ? ` damping=${r.damping}` : ''}`;
  const d = join(dir, 'runs', name.replace(/ /g, '_'));
  mkdirSync(d, { recursive: true });
  const losses = r.losses ?? Array.from({ length: 40 }, (_, i) => 3 - i * 0.01);
  const lines = losses.map((loss, i) => JSON.stringify({ kind: 'step', step: i + 1, epoch: 0, loss, ms: 10, elapsedMs: 10 * (i + 1) }));
  lines.push(JSON.stringify({ kind: 'eval', step: losses.length, loss: Math.log(r.final), metrics: { perplexity: r.final }, best: true, elapsedMs: 10 * losses.length }));
  writeFileSync(join(d, 'metrics.jsonl'), lines.join('\n') + '\n');
  writeFileSync(join(d, 'config.json'), JSON.stringify({ optimizer: r.optimizer, lr: r.lr, damping: r.damping ?? DEFAULTS.damping, seed: 0, steps: losses.length, name }));
  const summary = { name, steps: losses.length, monitor: 'perplexity', final: r.final, best: null, msPerStep: 10, diverged: !!r.diverged, interrupted: !!r.interrupted, stoppedEarly: false, clipRate: undefined };
  writeFileSync(join(d, 'run.json'), JSON.stringify(summary));
}

const uniq = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
const KLRS = uniq([0.03, 0.1, 0.3, DEFAULTS.lr['kfac']]);
const KDAMP = uniq([1e-4, 1e-3, 1e-2, DEFAULTS.damping]);
const ALRS = uniq([3e-4, 1e-3, 3e-3, 1e-2, DEFAULTS.lr['adamw']]);
const SLRS = uniq([1e-3, 3e-3, 1e-2, DEFAULTS.lr['soap']]);
const BIG = KLRS.at(-1)!;
const kfacFinal = (i: number, j: number) => 10 + i + j / 10;

function fakeGrid(): string {
  const root = tmp();
  KDAMP.forEach((d, i) => {
    const dir = join(root, 'kfac', `damping-${d}`);
    KLRS.forEach((lr, j) => {
      const f: Fake = { optimizer: 'kfac', lr, damping: d, final: kfacFinal(i, j) };
      // the trainer's own divergence flag; and a loss that rises 10× without the flag
      if (lr === BIG && i === 0) Object.assign(f, { final: 12345, diverged: true, losses: [3, 3, NaN] });
      if (lr === BIG && i === 1) f.losses = Array.from({ length: 40 }, (_, k) => (k < 10 ? 3 : 30));
      writeRun(dir, f);
    });
  });
  ALRS.forEach((lr, j) => writeRun(join(root, 'adamw', 'lr'), { optimizer: 'adamw', lr, final: 20 + j }));
  // an interrupted run is left out of the map
  SLRS.forEach((lr, j) => writeRun(join(root, 'soap', 'lr'), { optimizer: 'soap', lr, final: 30 + j, interrupted: j === 0 }));
  return root;
}

function map(root: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [MAP, root, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lrLabel = (v: number) => (v < 0.01 ? v.toExponential() : String(v));

describe('bench/e2e/grid-map.mjs', () => {
  it('prints every cell of every family, marks divergences and the default, and writes a well-formed SVG', () => {
    const root = fakeGrid();
    const svgFile = join(root, 'map.svg');
    const r = map(root, '--svg', svgFile, '--md');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const md = r.stdout;
    // K-FAC: damping down, lr across, the big-lr column diverged in the first two rows
    expect(md).toContain(`| damping \\ lr | ${KLRS.map(lrLabel).join(' | ')} |`);
    KDAMP.forEach((d, i) => {
      const cells = KLRS.map((lr, j) => {
        let s = String(Number(kfacFinal(i, j).toPrecision(4)));
        if (lr === BIG && i === 0) s = '✗ 12350';
        if (lr === BIG && i === 1) s = `✗ ${s}`;
        return lr === DEFAULTS.lr['kfac'] && d === DEFAULTS.damping ? `**${s}**` : s;
      });
      expect(md).toContain(`| ${d.toExponential()} | ${cells.join(' | ')} |`);
    });
    expect(md.match(/✗ \d/g)).toHaveLength(2);
    expect(md).toContain(`| final | ${ALRS.map((lr, j) => (lr === DEFAULTS.lr['adamw'] ? `**${20 + j}**` : String(20 + j))).join(' | ')} |`);
    expect(md).toContain(`| lr | ${SLRS.slice(1).map(lrLabel).join(' | ')} |`);
    expect(md).toMatch(/SOAP: lr axis only/);

    const svg = readFileSync(svgFile, 'utf8');
    expect(xmlProblems(svg)).toEqual([]);
    expect(existsSync(join(root, 'grid-map.html'))).toBe(true);
    expect(readFileSync(join(root, 'grid-map.html'), 'utf8')).toContain(svg.trim().split('\n')[0]);
    const diverged = [...svg.matchAll(/<rect class="cell diverged" data-lr="([^"]+)" data-damping="([^"]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(diverged).toEqual([[BIG, KDAMP[0]], [BIG, KDAMP[1]]]);
    expect(svg.match(/<rect class="cell/g)).toHaveLength(KLRS.length * KDAMP.length + ALRS.length + SLRS.length - 1);
    const outlines = [...svg.matchAll(/<rect class="default" data-lr="([^"]+)" data-damping="([^"]*)"/g)].map((m) => [Number(m[1]), m[2]]);
    const soapDefault = SLRS.indexOf(DEFAULTS.lr['soap']) > 0 ? [[DEFAULTS.lr['soap'], '']] : [];
    expect(outlines).toEqual([[DEFAULTS.lr['kfac'], String(DEFAULTS.damping)], [DEFAULTS.lr['adamw'], ''], ...soapDefault]);
    // every finished cell's value is printed in it
    expect(svg).toContain('>✗ 12350<');
    expect(svg).toContain(`>${String(Number(kfacFinal(2, 0).toPrecision(4)))}<`);
    expect(svg).not.toContain('undefined');
  });

  it('refuses a folder without runs', () => {
    const r = map(tmp());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no finished runs/);
  });

  it('finds a broken SVG broken (the checker it relies on)', () => {
    expect(xmlProblems('<svg><g></svg>')).not.toEqual([]);
    expect(xmlProblems('<svg><text>a & b</text></svg>')).not.toEqual([]);
    expect(xmlProblems('<svg x="1" x="2"/>')).not.toEqual([]);
    expect(xmlProblems('<svg><text>a &amp; b</text></svg>')).toEqual([]);
  });
});

const model = sharedData('llama2c/stories260K.bin');
describe.skipIf(!model)(`bench/e2e/grid.sh (2 steps)${skipNote(model, 'llama2c/stories260K.bin')}`, () => {
  it('runs the families it is given through compare and the map reads them', () => {
    const out = tmp();
    const env = { ...process.env, KFAC_PEFT_DATA: SHARED_DATA, FAMILIES: 'kfac adamw', KFAC_LRS: '0.1', KFAC_DAMPINGS: '1e-3', ADAMW_LRS: '1e-3', STEPS: '2', PARALLEL: '2', EXTRA: '--eval-limit 2 --train-limit 32' };
    const r = spawnSync('bash', [join(ROOT, 'bench', 'e2e', 'grid.sh'), 'lm', out], { encoding: 'utf8', env, timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(out, 'grid-info.txt'), 'utf8')).toMatch(/STEPS=2 .*PARALLEL=2/);
    for (const f of ['kfac/damping-1e-3', 'adamw/lr']) expect(readFileSync(join(out, `${f}.log`), 'utf8')).toMatch(/^exit 0$/m);
    const m = map(out, '--md');
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toMatch(/after 2 steps/);
    expect(m.stdout).toMatch(/\| 1e-3 \| [\d.*]+ \|/);
    expect(m.stdout).toMatch(/\| final \| [\d.*]+ \|/);
  });
});

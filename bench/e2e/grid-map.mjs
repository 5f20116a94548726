#!/usr/bin/env node
// The robustness map of bench/e2e/grid.sh's runs: one panel per optimizer family (a folder of OUT),
// learning rate across, damping down (K-FAC only; the other families have one row), each cell
// coloured by the final dev metric on one perceptual (viridis) scale shared by all panels, brighter
// = better, the value printed in it; diverged cells (lib/train/compare's mark: a non-finite loss,
// or the training loss above 2× its start) hatched and marked ✗; the optimizer's default setting
// outlined. Writes the SVG and an HTML page embedding it; --md prints the same numbers as Markdown
// tables for BENCHMARKS.md.
// usage: node bench/e2e/grid-map.mjs <OUT> [--svg file] [--html file] [--md]
//   (defaults: OUT/grid-map.svg, OUT/grid-map.html)
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { curveOf } from '../../dist/train/compare.js';
import { DEFAULTS } from '../../dist/train/run.js';

export const FAMILIES = {
  kfac: 'K-FAC at its defaults',
  'kfac-noclip': 'K-FAC, Newton clip off',
  'kfac-gradclip': 'K-FAC, Newton clip off, grad clip 1',
  adamw: 'AdamW',
  shampoo: 'Shampoo',
  soap: 'SOAP',
};
const ORDER = Object.keys(FAMILIES);

/** Folders under `dir` (itself included, at most `depth` levels down) holding a finished run's files. */
function runDirs(dir, depth = 3) {
  if (existsSync(join(dir, 'run.json')) && existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'metrics.jsonl'))) return [dir];
  if (depth === 0) return [];
  return readdirSync(dir)
    .filter((e) => statSync(join(dir, e)).isDirectory())
    .sort()
    .flatMap((e) => runDirs(join(dir, e), depth - 1));
}

function readRun(dir) {
  const summary = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const text = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim();
  const history = text ? text.split('\n').map((l) => JSON.parse(l)) : [];
  const curve = curveOf(summary.name, history, summary.monitor);
  const final = typeof summary.final === 'number' ? summary.final : NaN;
  return { dir, summary, config, final, diverged: !!summary.diverged || curve.diverged || !Number.isFinite(final) };
}

const num = (a, b) => a - b;

/**
 * The grid of every family folder under `root`: { monitor, mode, steps, seeds, families: [{ key,
 * label, optimizer, lrs, dampings (null: no damping axis), cells: [{ lr, damping, value, finals,
 * diverged, runs, isDefault }] }] }. A cell pools its seeds: value = mean of the finite finals.
 */
export function readGrid(root) {
  const keys = readdirSync(root)
    .filter((e) => statSync(join(root, e)).isDirectory())
    .sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
  const families = [];
  let monitor;
  const steps = new Set();
  const seeds = new Set();
  for (const key of keys) {
    const runs = runDirs(join(root, key)).map(readRun).filter((r) => !r.summary.interrupted);
    if (runs.length === 0) continue;
    const optimizer = runs[0].config.optimizer;
    if (runs.some((r) => r.config.optimizer !== optimizer)) throw new Error(`${join(root, key)}: runs of several optimizers (${[...new Set(runs.map((r) => r.config.optimizer))].join(', ')})`);
    for (const r of runs) {
      if (monitor === undefined) monitor = r.summary.monitor;
      if (r.summary.monitor !== monitor) throw new Error(`${r.dir}: monitors ${r.summary.monitor}, the others ${monitor}`);
      steps.add(r.config.steps ?? r.summary.steps);
      seeds.add(r.config.seed);
    }
    const hasDamping = optimizer === 'kfac';
    const lrs = [...new Set(runs.map((r) => r.config.lr))].sort(num);
    const dampings = hasDamping ? [...new Set(runs.map((r) => r.config.damping))].sort(num) : null;
    const cells = [];
    for (const damping of dampings ?? [null])
      for (const lr of lrs) {
        const rs = runs.filter((r) => r.config.lr === lr && (damping === null || r.config.damping === damping));
        if (rs.length === 0) continue;
        const finite = rs.map((r) => r.final).filter(Number.isFinite);
        cells.push({
          lr,
          damping,
          value: finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : NaN,
          finals: rs.map((r) => r.final),
          diverged: rs.filter((r) => r.diverged).length,
          runs: rs.length,
          isDefault: lr === DEFAULTS.lr[optimizer] && (damping === null || damping === DEFAULTS.damping),
        });
      }
    families.push({ key, label: FAMILIES[key] ?? key, optimizer, lrs, dampings, cells });
  }
  if (families.length === 0) throw new Error(`no finished runs under ${root}/<family>/`);
  const mode = monitor === 'loss' || monitor === 'perplexity' ? 'min' : 'max';
  return { monitor, mode, steps: [...steps].sort(num), seeds: [...seeds].sort(num), families };
}

export const fmt = (v) => (Number.isFinite(v) ? (Math.abs(v) >= 1e5 ? v.toExponential(2) : String(Number(v.toPrecision(4)))) : 'NaN');
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// viridis at 0, 1/8, …, 1 (matplotlib's table)
const VIRIDIS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];
export function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const rgb = (h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16));
  const [a, b] = [rgb(VIRIDIS[i]), rgb(VIRIDIS[i + 1])];
  return '#' + a.map((v, k) => Math.round(v + (b[k] - v) * (x - i)).toString(16).padStart(2, '0')).join('');
}

/** The shared colour scale: t ∈ [0, 1] per value, 1 = best; logarithmic when the values span over 2×. */
export function colourScale(grid) {
  const vals = grid.families.flatMap((f) => f.cells.filter((c) => !c.diverged && Number.isFinite(c.value)).map((c) => c.value));
  const lo = vals.length ? Math.min(...vals) : 0;
  const hi = vals.length ? Math.max(...vals) : 1;
  const log = lo > 0 && hi / lo > 2;
  const tf = (v) => (log ? Math.log(v) : v);
  const t = (v) => {
    if (!(hi > lo)) return 1;
    const u = (tf(v) - tf(lo)) / (tf(hi) - tf(lo));
    return grid.mode === 'max' ? u : 1 - u;
  };
  return { lo, hi, log, t };
}

const lrLabel = (v) => (v < 0.01 ? v.toExponential() : String(v));
const dampLabel = (v) => (v === null ? '–' : v.toExponential());

/** The map as one self-contained SVG. */
export function gridSvg(grid, { title = 'Robustness map', caption = [] } = {}) {
  const CW = 72, CH = 40, PL = 58, PT = 40, PB = 40, GAP = 28, PER_ROW = 3;
  const scale = colourScale(grid);
  const panels = grid.families.map((f) => ({ f, w: PL + f.lrs.length * CW, h: PT + (f.dampings?.length ?? 1) * CH + PB }));
  const rows = [];
  for (let i = 0; i < panels.length; i += PER_ROW) rows.push(panels.slice(i, i + PER_ROW));
  const W = Math.max(560, ...rows.map((r) => r.reduce((a, p) => a + p.w, 0) + GAP * (r.length + 1)));
  let y = 44;
  const out = [];
  const body = [];
  for (const row of rows) {
    let x = GAP;
    const rh = Math.max(...row.map((p) => p.h));
    for (const { f, w } of row) {
      body.push(`<g data-family="${esc(f.key)}">`);
      body.push(`<text x="${x + PL + (w - PL) / 2}" y="${y + 16}" text-anchor="middle" font-weight="bold">${esc(f.label)}</text>`);
      const cx = (lr) => x + PL + f.lrs.indexOf(lr) * CW;
      const cy = (d) => y + PT - 14 + (d === null ? 0 : f.dampings.indexOf(d)) * CH;
      (f.dampings ?? [null]).forEach((d) => body.push(`<text x="${x + PL - 6}" y="${cy(d) + CH / 2 + 4}" text-anchor="end" fill="#333">${esc(dampLabel(d))}</text>`));
      const bottom = cy(f.dampings?.at(-1) ?? null) + CH;
      f.lrs.forEach((lr) => body.push(`<text x="${cx(lr) + CW / 2}" y="${bottom + 15}" text-anchor="middle" fill="#333">${esc(lrLabel(lr))}</text>`));
      body.push(`<text x="${x + PL + (w - PL) / 2}" y="${bottom + 31}" text-anchor="middle" fill="#555">lr</text>`);
      if (f.dampings) body.push(`<text transform="translate(${x + 12} ${(cy(f.dampings[0]) + bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#555">damping</text>`);
      for (const c of f.cells) {
        const X = cx(c.lr), Y = cy(c.damping);
        const attrs = `data-lr="${c.lr}" data-damping="${c.damping ?? ''}"`;
        const fill = c.diverged ? '#d9d9d9' : Number.isFinite(c.value) ? viridis(scale.t(c.value)) : '#ffffff';
        const dark = !c.diverged && Number.isFinite(c.value) && scale.t(c.value) < 0.6;
        body.push(`<rect class="cell${c.diverged ? ' diverged' : ''}" ${attrs} x="${X}" y="${Y}" width="${CW}" height="${CH}" fill="${fill}" stroke="#fff"/>`);
        if (c.diverged) body.push(`<rect x="${X}" y="${Y}" width="${CW}" height="${CH}" fill="url(#hatch)"/>`);
        const label = c.diverged ? `✗ ${Number.isFinite(c.value) ? fmt(c.value) : ''}`.trim() : fmt(c.value);
        const extra = c.diverged && c.runs > 1 ? ` (${c.diverged}/${c.runs})` : '';
        body.push(`<text class="value" ${attrs} x="${X + CW / 2}" y="${Y + CH / 2 + 4}" text-anchor="middle" fill="${dark ? '#fff' : '#000'}"${c.diverged ? ' font-weight="bold"' : ''}>${esc(label + extra)}</text>`);
      }
      for (const c of f.cells.filter((c) => c.isDefault))
        body.push(`<rect class="default" data-lr="${c.lr}" data-damping="${c.damping ?? ''}" x="${cx(c.lr) + 1.5}" y="${cy(c.damping) + 1.5}" width="${CW - 3}" height="${CH - 3}" fill="none" stroke="#e4007c" stroke-width="3"/>`);
      body.push('</g>');
      x += w + GAP;
    }
    y += rh + 8;
  }
  // colour bar: worst … best, with the ends' values
  const BW = 240, BX = GAP + PL, BY = y + 4;
  const stops = Array.from({ length: 9 }, (_, i) => `<stop offset="${i / 8}" stop-color="${VIRIDIS[i]}"/>`).join('');
  body.push(`<rect x="${BX}" y="${BY}" width="${BW}" height="12" fill="url(#scale)" stroke="#888"/>`);
  const [left, right] = grid.mode === 'max' ? [scale.lo, scale.hi] : [scale.hi, scale.lo];
  body.push(`<text x="${BX - 6}" y="${BY + 10}" text-anchor="end" fill="#333">${esc(fmt(left))}</text>`);
  body.push(`<text x="${BX + BW + 6}" y="${BY + 10}" fill="#333">${esc(fmt(right))} final ${esc(grid.monitor)} (${grid.mode === 'max' ? 'higher' : 'lower'} is better${scale.log ? ', log scale' : ''})</text>`);
  body.push(`<rect x="${BX}" y="${BY + 22}" width="18" height="12" fill="#d9d9d9"/><rect x="${BX}" y="${BY + 22}" width="18" height="12" fill="url(#hatch)"/>`);
  body.push(`<text x="${BX + 24}" y="${BY + 32}" fill="#333">✗ diverged</text>`);
  body.push(`<rect x="${BX + 110}" y="${BY + 22}" width="18" height="12" fill="none" stroke="#e4007c" stroke-width="3"/>`);
  body.push(`<text x="${BX + 134}" y="${BY + 32}" fill="#333">the optimizer's default setting</text>`);
  let cyText = BY + 56;
  for (const line of caption) {
    body.push(`<text x="${GAP}" y="${cyText}" fill="#444">${esc(line)}</text>`);
    cyText += 16;
  }
  const H = cyText + 4;
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#555" stroke-width="1.5"/></pattern><linearGradient id="scale">${stops}</linearGradient></defs>`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  return [...out, ...body, '</svg>'].join('\n') + '\n';
}

/** The lines under the map: what a cell is, and the knobs a family lacks. */
export function gridCaption(grid) {
  const lines = [
    `Final dev ${grid.monitor} after ${grid.steps.join('/')} steps, seed${grid.seeds.length > 1 ? 's' : ''} ${grid.seeds.join(', ')}${grid.seeds.length > 1 ? ' (mean; ✗ k/n: k of n seeds diverged)' : ''}.`,
    'Diverged: a non-finite loss, or the training loss (10-step mean) above 2× the loss of the first step (lib/train/compare).',
  ];
  const lrOnly = grid.families.filter((f) => f.optimizer === 'shampoo' || f.optimizer === 'soap').map((f) => f.label);
  if (lrOnly.length) lines.push(`${lrOnly.join(', ')}: lr axis only, the CLI exposes no damping / epsilon option for ${lrOnly.length > 1 ? 'them' : 'it'}.`);
  return lines;
}

/** The same numbers as Markdown: one table per family, damping down, lr across. */
export function gridMarkdown(grid) {
  const out = [`Final dev ${grid.monitor} (${grid.mode === 'max' ? 'higher' : 'lower'} is better); ✗ = diverged; **bold** = the optimizer's default setting.`, ''];
  for (const f of grid.families) {
    out.push(`**${f.label}**`, '');
    out.push(`| ${f.dampings ? 'damping \\ lr' : 'lr'} | ${f.lrs.map(lrLabel).join(' | ')} |`);
    out.push(`| --- |${f.lrs.map(() => ' ---: |').join('')}`);
    for (const d of f.dampings ?? [null]) {
      const cells = f.lrs.map((lr) => {
        const c = f.cells.find((x) => x.lr === lr && x.damping === d);
        if (!c) return '–';
        let s = Number.isFinite(c.value) ? fmt(c.value) : 'NaN';
        if (c.diverged) s = `✗ ${s}${c.runs > 1 ? ` (${c.diverged}/${c.runs})` : ''}`;
        return c.isDefault ? `**${s}**` : s;
      });
      out.push(`| ${d === null ? 'final' : dampLabel(d)} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

export function gridHtml(svg, { title, details = [], markdown = '' }) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1320px; } svg { max-width: 100%; height: auto; } ul { color: #555; } pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }</style>
</head><body>
<h1>${esc(title)}</h1>
<ul>${details.map((d) => `<li>${esc(d)}</li>`).join('')}</ul>
${svg}
<h2>The numbers</h2>
<pre>${esc(markdown)}</pre>
</body></html>
`;
}

function main(argv) {
  const args = [...argv];
  const opt = (name) => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a file`);
    args.splice(i, 2);
    return v;
  };
  const svgFile = opt('--svg');
  const htmlFile = opt('--html');
  const md = args.includes('--md');
  const rest = args.filter((a) => a !== '--md');
  if (rest.length !== 1 || rest[0].startsWith('--')) throw new Error('usage: grid-map.mjs <OUT> [--svg file] [--html file] [--md]');
  const root = resolve(rest[0]);
  const grid = readGrid(root);
  const title = `Robustness map: lr × damping, final ${grid.monitor}`;
  const caption = gridCaption(grid);
  const svg = gridSvg(grid, { title, caption });
  const markdown = gridMarkdown(grid);
  const info = join(root, 'grid-info.txt');
  const details = existsSync(info) ? readFileSync(info, 'utf8').trim().split('\n') : [];
  writeFileSync(svgFile ?? join(root, 'grid-map.svg'), svg);
  writeFileSync(htmlFile ?? join(root, 'grid-map.html'), gridHtml(svg, { title, details: [...details, ...caption], markdown }));
  if (md) process.stdout.write(`${caption.join(' ')}\n\n${markdown}\n`);
  else process.stdout.write(`wrote ${svgFile ?? join(root, 'grid-map.svg')} and ${htmlFile ?? join(root, 'grid-map.html')}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main(process.argv.slice(2));

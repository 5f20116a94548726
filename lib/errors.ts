/**
 * Typed errors. Every failure the library reports is a KfacError subclass with a stable
 * `code`; argument errors also name the argument, what was expected and what came.
 */

export interface KfacErrorDetails {
  argument?: string;
  expected?: string;
  got?: string;
  hint?: string;
  cause?: unknown;
}

export class KfacError extends Error {
  readonly code: string;
  readonly argument: string | undefined;
  readonly expected: string | undefined;
  readonly got: string | undefined;
  readonly hint: string | undefined;

  constructor(code: string, message: string, details: KfacErrorDetails = {}) {
    super(details.hint ? `${message}\n  hint: ${details.hint}` : message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.argument = details.argument || undefined;
    this.expected = details.expected || undefined;
    this.got = details.got || undefined;
    this.hint = details.hint;
  }
}

/** A KfacError subclass with a fixed code. */
function coded(code: string) {
  return class extends KfacError {
    constructor(message: string, details: KfacErrorDetails = {}) {
      super(code, message, details);
    }
  };
}

/** A value of the wrong type, or out of its allowed range. */
export class InvalidArgumentError extends coded('ERR_INVALID_ARGUMENT') {}
/** Shapes that do not fit together. */
export class ShapeError extends coded('ERR_SHAPE') {}
/** An element type the operation does not take. */
export class DTypeError extends coded('ERR_DTYPE') {}
/** Tensors on the wrong or on mixed devices. */
export class DeviceError extends coded('ERR_DEVICE') {}
/** A tensor used after dispose(). */
export class DisposedError extends coded('ERR_DISPOSED') {}
/** NaN or Inf where finite values are required. */
export class NotFiniteError extends coded('ERR_NOT_FINITE') {}
/** An allocation that failed, or one refused as absurd before it was tried. */
export class OutOfMemoryError extends coded('ERR_OUT_OF_MEMORY') {}
/** A decomposition that did not converge or a matrix that is not positive definite. */
export class NumericalError extends coded('ERR_NUMERICAL') {}
/** A broken invariant inside the library: please report it. */
export class InternalError extends coded('ERR_INTERNAL') {}
/**
 * A file that does not follow its format (truncated, inconsistent offsets, bad header …).
 * Names the file and, where known, the byte offset at which the problem was found.
 */
export class FormatError extends KfacError {
  readonly file: string;
  readonly offset: number | undefined;
  constructor(file: string, message: string, details: KfacErrorDetails & { offset?: number } = {}) {
    const where = details.offset === undefined ? file : `${file} (at byte ${details.offset})`;
    super('ERR_FORMAT', `${where}: ${message}`, details);
    this.file = file;
    this.offset = details.offset;
  }
}
/** A model configuration the library cannot use: unknown family, or values that contradict each other. */
export class ConfigError extends KfacError {
  readonly file: string | undefined;
  constructor(message: string, details: KfacErrorDetails & { file?: string } = {}) {
    super('ERR_CONFIG', details.file === undefined ? message : `${details.file}: ${message}`, details);
    this.file = details.file;
  }
}
/** A file or folder that could not be opened or read. */
export class FileError extends KfacError {
  readonly file: string;
  constructor(file: string, message: string, details: KfacErrorDetails = {}) {
    super('ERR_FILE', `${file}: ${message}`, details);
    this.file = file;
  }
}
/** The native addon could not be loaded; the message lists every attempt and what to do. */
export class NativeLoadError extends KfacError {
  readonly attempts: readonly { path: string; error: string }[];
  constructor(message: string, attempts: readonly { path: string; error: string }[], details: KfacErrorDetails = {}) {
    super('ERR_NATIVE_LOAD', message, details);
    this.attempts = attempts;
  }
}

type ErrorClass = new (message: string, details?: KfacErrorDetails) => KfacError;

const byCode: Record<string, ErrorClass> = {
  ERR_INVALID_ARGUMENT: InvalidArgumentError,
  ERR_SHAPE: ShapeError,
  ERR_DTYPE: DTypeError,
  ERR_DEVICE: DeviceError,
  ERR_DISPOSED: DisposedError,
  ERR_NOT_FINITE: NotFiniteError,
  ERR_OUT_OF_MEMORY: OutOfMemoryError,
  ERR_NUMERICAL: NumericalError,
  ERR_INTERNAL: InternalError,
};

/** Builds the typed error for a code reported by native code (used by the loader). */
export function errorFromCode(code: string, message: string, argument = '', expected = '', got = ''): KfacError {
  const Cls = byCode[code] ?? InternalError;
  return new Cls(message, { argument, expected, got });
}

/** Throws an InvalidArgumentError in the standard "<arg>: expected X, got Y" form. */
export function invalidArgument(argument: string, expected: string, got: string): never {
  throw new InvalidArgumentError(`${argument}: expected ${expected}, got ${got}`, { argument, expected, got });
}

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : `the number ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'object') return v.constructor && v.constructor !== Object ? `a ${v.constructor.name}` : 'an object';
  return `a ${typeof v}`;
}

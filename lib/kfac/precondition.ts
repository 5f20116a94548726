/**
 * K-FAC preconditioning of one linear layer's gradient (the "Newton step"), fused.
 *
 * Shapes: grad ∇W [dout, din]; gradBias ∇b [dout] (optional): the bias is treated as the
 * last column of [∇W | ∇b], so the A-side matrices are [din+1, din+1] with a bias and
 * [din, din] without; G-side matrices are [dout, dout]. Outputs `weight` [dout, din] and
 * `bias` [dout] are overwritten (given `out`/`outBias` are reused, otherwise new tensors).
 */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkFinite, checkOptions } from '../util/validate.js';
import { expectShape, expectSquare, kfacNative } from './native.js';
import type { NativeTensor } from '../native/addon.js';

/** A symmetric factor's eigendecomposition F = Q diag(d) Qᵀ (eigenvectors in Q's columns). */
export interface Eigenpairs {
  Q: Tensor;
  d: Tensor;
}

export interface PreconditionResult {
  /** P_W [dout, din]. */
  weight: Tensor;
  /** P_b [dout], present when a bias gradient was given. */
  bias?: Tensor;
}

interface Common {
  grad: Tensor;
  gradBias?: Tensor;
  out?: Tensor;
  outBias?: Tensor;
}

export interface PreconditionEigenArgs extends Common {
  A: Eigenpairs;
  G: Eigenpairs;
  /** λ ≥ 0. */
  damping: number;
}

export interface PreconditionEkfacArgs extends Common {
  /** The eigenvectors of A [Da, Da] and of G [dout, dout] (in their columns). */
  QA: Tensor;
  QG: Tensor;
  /** Running second moments of the projected gradients [dout, Da] (see ekfacMoments). */
  S: Tensor;
  /** c ≥ 0 multiplying S: the moving average's bias correction 1/(1 − Πβ) (default 1). */
  scale?: number;
  /** λ ≥ 0. */
  damping: number;
}

export interface PreconditionInverseArgs extends Common {
  /** (A + π√λ I)⁻¹ [Da, Da], e.g. from linalg.dampedInverse with piDamping's dampA. */
  Ainv: Tensor;
  /** (G + √λ/π I)⁻¹ [dout, dout]. */
  Ginv: Tensor;
}

export interface PreconditionFactorsArgs extends Common {
  A: Tensor;
  G: Tensor;
  /** λ ≥ 0. */
  damping: number;
}

export interface PiDamping {
  /** π = sqrt((tr A / dim A) / (tr G / dim G)); 1 when a trace is not positive. */
  pi: number;
  /** π·√λ, added to A. */
  dampA: number;
  /** √λ/π, added to G. */
  dampG: number;
}

interface Io {
  grad: NativeTensor;
  gradBias: NativeTensor | null;
  out: Tensor;
  outBias: Tensor | undefined;
  dout: number;
  din: number;
  Da: number;
}

function common(args: unknown): { o: Record<string, unknown>; io: Io } {
  const o = checkOptions(args, 'args');
  const grad = o['grad'];
  const hg = handleOf(grad, 'grad');
  const g = grad as Tensor;
  if (g.rank !== 2)
    throw new ShapeError(`grad: expected 2 dimensions [dout, din], got shape [${g.shape.join(', ')}]`, { argument: 'grad', expected: '2 dimensions [dout, din]', got: `[${g.shape.join(', ')}]` });
  const [dout, din] = g.shape as [number, number];
  const gb = o['gradBias'];
  let hb: NativeTensor | null = null;
  if (gb !== undefined) {
    hb = handleOf(gb, 'gradBias');
    expectShape(gb as Tensor, 'gradBias', [dout]);
  }
  const out = o['out'];
  if (out !== undefined) {
    handleOf(out, 'out');
    expectShape(out as Tensor, 'out', [dout, din]);
  }
  const outBias = o['outBias'];
  if (outBias !== undefined) {
    if (gb === undefined) invalidArgument('outBias', 'no bias output when no gradBias is given', describe(outBias));
    handleOf(outBias, 'outBias');
    expectShape(outBias as Tensor, 'outBias', [dout]);
  }
  const Da = din + (gb !== undefined ? 1 : 0);
  return {
    o,
    io: {
      grad: hg,
      gradBias: hb,
      out: (out as Tensor | undefined) ?? Tensor.empty([dout, din], { device: hg.device }),
      outBias: gb === undefined ? undefined : ((outBias as Tensor | undefined) ?? Tensor.empty([dout], { device: hg.device })),
      dout,
      din,
      Da,
    },
  };
}

function checkDamping(v: unknown): number {
  const l = checkFinite(v, 'damping');
  if (l < 0) invalidArgument('damping', 'a number >= 0', describe(l));
  return l;
}

function result(io: Io): PreconditionResult {
  return io.outBias ? { weight: io.out, bias: io.outBias } : { weight: io.out };
}

function eigenpairs(v: unknown, name: 'A' | 'G', n: number): [NativeTensor, NativeTensor] {
  const e = checkOptions(v, name);
  const hq = handleOf(e['Q'], `${name}.Q`);
  const hd = handleOf(e['d'], `${name}.d`);
  expectShape(e['Q'] as Tensor, `${name}.Q`, [n, n]);
  expectShape(e['d'] as Tensor, `${name}.d`, [n]);
  return [hq, hd];
}

/**
 * Eigen method, exact damping of A ⊗ G:
 * `P = Q_G [ (Q_Gᵀ [∇W|∇b] Q_A) ⊘ (d_G d_Aᵀ + λ) ] Q_Aᵀ`.
 * Negative eigenvalues are clamped to 0; a component whose denominator is 0 (λ = 0 and
 * a zero eigenvalue) is set to 0 (pseudo-inverse), so rank-deficient factors give a
 * finite step.
 */
export function preconditionEigen(args: PreconditionEigenArgs): PreconditionResult {
  const { o, io } = common(args);
  const [QA, dA] = eigenpairs(o['A'], 'A', io.Da);
  const [QG, dG] = eigenpairs(o['G'], 'G', io.dout);
  const damping = checkDamping(o['damping']);
  kfacNative().preconditionEigen(io.grad, io.gradBias, QA, dA, QG, dG, damping, handleOf(io.out, 'out'), io.outBias ? handleOf(io.outBias, 'outBias') : null);
  return result(io);
}

/**
 * EKFAC (eigenvalue-corrected K-FAC): the eigen method's Kronecker basis with the products of
 * eigenvalues replaced by second moments measured in that basis,
 * `P = Q_G [ (Q_Gᵀ [∇W|∇b] Q_A) ⊘ (c·S + λ) ] Q_Aᵀ`; a component whose denominator is not
 * positive is 0. Runs where the tensors live (docs/KFAC.md#ekfac).
 */
export function preconditionEkfac(args: PreconditionEkfacArgs): PreconditionResult {
  const { o, io } = common(args);
  const QA = handleOf(o['QA'], 'QA');
  const QG = handleOf(o['QG'], 'QG');
  const S = handleOf(o['S'], 'S');
  const scale = o['scale'] === undefined ? 1 : checkFinite(o['scale'], 'scale');
  if (scale < 0) invalidArgument('scale', 'a number >= 0', describe(scale));
  const damping = checkDamping(o['damping']);
  kfacNative().preconditionEkfac(io.grad, io.gradBias, QA, QG, S, scale, damping, handleOf(io.out, 'out'), io.outBias ? handleOf(io.outBias, 'outBias') : null);
  return result(io);
}

/**
 * The Kronecker model's curvature along a change D = [dW | db] of one layer's weights:
 * `⟨D, G D A⟩ = vec(D)ᵀ (A ⊗ G) vec(D)`, summed in float64 (adaptive damping's quadratic model,
 * docs/KFAC.md#adaptive-damping). dW [dout, din], db [dout] or null, A [Da, Da] with Da = din (+1
 * with db), G [dout, dout]; runs where the tensors live and returns one number.
 */
export function kroneckerQuadratic(dW: Tensor, db: Tensor | null, A: Tensor, G: Tensor): number {
  const hW = handleOf(dW, 'dW');
  const hb = db === null ? null : handleOf(db, 'db');
  return kfacNative().kronQuadraticMany([hW], [hb], [handleOf(A, 'A')], [handleOf(G, 'G')])[0]!;
}

/** One term of {@link kroneckerQuadraticMany}: a layer's change [dW | db] and its factors A, G. */
export interface KroneckerTerm {
  dW: Tensor;
  db: Tensor | null;
  A: Tensor;
  G: Tensor;
}

/**
 * {@link kroneckerQuadratic} of many layers at once (all on one device): one number per term, the
 * same as one call each; on a device one download for them all, where a loop of
 * `kroneckerQuadratic` synchronises once per layer.
 */
export function kroneckerQuadraticMany(terms: readonly KroneckerTerm[]): number[] {
  if (terms.length === 0) return [];
  const r = kfacNative().kronQuadraticMany(
    terms.map((t, i) => handleOf(t.dW, `terms[${i}].dW`)),
    terms.map((t, i) => (t.db === null ? null : handleOf(t.db, `terms[${i}].db`))),
    terms.map((t, i) => handleOf(t.A, `terms[${i}].A`)),
    terms.map((t, i) => handleOf(t.G, `terms[${i}].G`)),
  );
  return Array.from(r);
}

/** Inverse method with precomputed inverses: `[P_W | P_b] = Ginv [∇W | ∇b] Ainv`. */
export function preconditionInverse(args: PreconditionInverseArgs): PreconditionResult {
  const { o, io } = common(args);
  const hA = handleOf(o['Ainv'], 'Ainv');
  const hG = handleOf(o['Ginv'], 'Ginv');
  expectShape(o['Ainv'] as Tensor, 'Ainv', [io.Da, io.Da]);
  expectShape(o['Ginv'] as Tensor, 'Ginv', [io.dout, io.dout]);
  kfacNative().preconditionInverse(io.grad, io.gradBias, hA, hG, handleOf(io.out, 'out'), io.outBias ? handleOf(io.outBias, 'outBias') : null);
  return result(io);
}

/**
 * Inverse method from the factors with factored (π) damping:
 * `P = (G + (√λ/π) I)⁻¹ [∇W | ∇b] (A + π√λ I)⁻¹`, π = sqrt((tr A / dim A) / (tr G / dim G))
 * (π = 1 when a trace is not positive, e.g. lora_A's G factor at step one). The inverses
 * are recomputed on every call; to reuse them between refreshes, compute them with
 * linalg.dampedInverse and piDamping() and call preconditionInverse.
 */
export function preconditionInverseFactors(args: PreconditionFactorsArgs): PreconditionResult & PiDamping & { usedFloat64: boolean } {
  const { o, io } = common(args);
  const hA = handleOf(o['A'], 'A');
  const hG = handleOf(o['G'], 'G');
  expectShape(o['A'] as Tensor, 'A', [io.Da, io.Da]);
  expectShape(o['G'] as Tensor, 'G', [io.dout, io.dout]);
  const damping = checkDamping(o['damping']);
  const r = kfacNative().preconditionInverseFactors(io.grad, io.gradBias, hA, hG, damping, handleOf(io.out, 'out'), io.outBias ? handleOf(io.outBias, 'outBias') : null);
  return { ...result(io), pi: r.pi, dampA: r.dampA, dampG: r.dampG, usedFloat64: r.usedFloat64 };
}

/** The factored damping of the inverse method for factors A and G and damping λ. */
export function piDamping(A: Tensor, G: Tensor, damping: number): PiDamping {
  const hA = handleOf(A, 'A');
  const hG = handleOf(G, 'G');
  expectSquare(A, 'A');
  expectSquare(G, 'G');
  const r = kfacNative().piDamping(hA, hG, checkDamping(damping));
  return { pi: r.pi, dampA: r.dampA, dampG: r.dampG };
}

import { describe, expect, it } from 'vitest';

import { InvalidArgumentError } from '../../lib/errors.js';
import { TrustReference } from '../../lib/optim/trust-lr.js';

describe('TrustReference (η̄ of the trust-ratio clip)', () => {
  it('follows the lr without a schedule, the largest lr so far with one, trustLr when given', () => {
    const plain = new TrustReference(undefined);
    expect(plain.at(0.1, false)).toBe(0.1);
    expect(plain.at(0.05, false)).toBe(0.05);
    const sched = new TrustReference(undefined);
    expect(sched.at(0.01, true)).toBe(0.01);
    expect(sched.at(0.1, true)).toBe(0.1);
    expect(sched.at(0.02, true)).toBe(0.1); // decay: the reference stays at the peak
    expect(sched.peak).toBe(0.1);
    const fixed = new TrustReference(0.3);
    expect(fixed.at(0.1, true)).toBe(0.3);
    expect(fixed.at(0.5, false)).toBe(0.3);
  });

  it('is undefined until a positive lr was seen (the clip then names lr)', () => {
    const r = new TrustReference(undefined);
    expect(r.at(0, true)).toBeUndefined();
    expect(r.at(Number.NaN, true)).toBeUndefined();
    expect(r.at(0.2, true)).toBe(0.2);
  });

  it('restores a checkpointed peak and ignores anything that is not a finite number ≥ 0', () => {
    const r = new TrustReference(undefined);
    r.restore(0.4);
    expect(r.at(0.1, true)).toBe(0.4);
    for (const bad of [-1, Number.NaN, Infinity, '0.5', null]) {
      const q = new TrustReference(undefined);
      q.restore(bad);
      expect(q.peak).toBe(0);
    }
  });

  it('refuses a trustLr that is not a positive finite number, naming it', () => {
    for (const bad of [0, -0.1, Number.NaN, Infinity, '0.1', null]) {
      expect(() => new TrustReference(bad)).toThrow(InvalidArgumentError);
      expect(() => new TrustReference(bad)).toThrow(/trustLr/);
    }
  });
});

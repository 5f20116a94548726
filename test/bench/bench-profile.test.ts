/**
 * The op profile of `bench step --profile` and `bench train-step`: every native call timed under
 * its family while it runs, the addon restored after; with `sync` (cuda: wait for the stream)
 * each call waits for its own work inside its timer, and the wait itself is never wrapped (it
 * would call itself). Timings are not asserted (bench/, not a unit test); the counts are.
 */
import { describe, expect, test } from 'vitest';

import { familyOf, OpProfile } from '../../lib/bench/profile.js';
import { native } from '../../lib/native/loader.js';
import * as ops from '../../lib/ops/index.js';
import { Tensor } from '../../lib/tensor/tensor.js';

describe('OpProfile', () => {
  test('counts each call under its family, waits once per call with sync, and restores the addon', () => {
    const addon = native() as unknown as Record<string, unknown>;
    const before = { add: addon['add'], scale: addon['scale'], synchronize: addon['synchronize'] };
    let waits = 0;
    const prof = new OpProfile(() => {
      waits += 1;
    });
    const a = Tensor.from([1, 2, 3], [3]);
    const b = Tensor.from([4, 5, 6], [3]);
    prof.start();
    expect(addon['add']).not.toBe(before.add);
    expect(addon['synchronize']).toBe(before.synchronize); // the wait is not an op
    ops.add(a, b, a);
    ops.add(a, b, a);
    ops.scale(a, 2, a);
    prof.stop();
    expect(addon['add']).toBe(before.add);
    expect(addon['scale']).toBe(before.scale);
    expect([...a.toArray()]).toEqual([18, 24, 30]);
    const fam = familyOf('add');
    expect(fam).toBe('elementwise, reductions');
    // handleOf may read the tensors' metadata through the addon: count only the ops' own family
    expect(prof.calls.get(fam)).toBe(3);
    expect(waits).toBe([...prof.calls.values()].reduce((x, y) => x + y, 0));
    const rows = prof.rows(1, 1000);
    expect(rows.find((r) => r.family === fam)?.callsPerStep).toBe(3);
    expect(rows.some((r) => r.family === 'other (JavaScript, allocation)')).toBe(true);
    for (const t of [a, b]) t.dispose();
  });

  test('a call that throws waits for nothing and is still counted', () => {
    let waits = 0;
    const prof = new OpProfile(() => {
      waits += 1;
    });
    const a = Tensor.from([1, 2, 3], [3]);
    const b = Tensor.from([1, 2], [2]);
    prof.start();
    try {
      expect(() => ops.add(a, b, a)).toThrow();
    } finally {
      prof.stop();
    }
    expect(prof.calls.get('elementwise, reductions')).toBe(1);
    expect(waits).toBe(0);
    for (const t of [a, b]) t.dispose();
  });
});

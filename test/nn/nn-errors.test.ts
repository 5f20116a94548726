/** Malformed arguments to the nn kernels and modules give the library's typed errors. */
import { describe, expect, it } from 'vitest';

import { DisposedError, InvalidArgumentError, KfacError, nn, NotFiniteError, ShapeError, Tensor } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';

const F = nn.functional;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof KfacError)) throw e;
    return e.code;
  }
  return 'no error';
}

describe('typed errors from the nn functions', () => {
  const x = Tensor.randn([4, 3]);
  const W = Tensor.randn([5, 3]);

  it('linear', () => {
    expect(() => F.linearForward(x, Tensor.randn([5, 4]), null, Tensor.empty([4, 5]))).toThrow(ShapeError);
    expect(() => F.linearForward(x, W, Tensor.randn([4]), Tensor.empty([4, 5]))).toThrow(ShapeError);
    expect(() => F.linearForward(x, W, null, Tensor.empty([4, 4]))).toThrow(ShapeError);
    expect(() => F.linearForward(x, W, null, x)).toThrow(ShapeError);
    expect(() => F.linearForward(x, W, null, Tensor.empty([4, 5]), 'conv' as never)).toThrow(InvalidArgumentError);
    expect(() => F.linearForward(x, W, null, Tensor.empty([4, 5]), 'conv1d')).toThrow(ShapeError);
    expect(() => F.linearBackward(x, W, Tensor.randn([4, 5]), { dx: Tensor.empty([4, 4]), dW: null, db: null })).toThrow(ShapeError);
    const y = Tensor.empty([4, 5]);
    expect(() => F.linearBackward(x, W, y, { dx: null, dW: y.reshape([5, 4]) as never, db: null })).toThrow(ShapeError);
    const d = Tensor.randn([2]);
    d.dispose();
    expect(() => F.linearForward(d, W, null, y)).toThrow(DisposedError);
    expect(() => F.linearForward({} as never, W, null, y)).toThrow(InvalidArgumentError);
  });

  it('norms, activations, dropout', () => {
    expect(() => F.layerNormForward(x, Tensor.randn([4]), null, 1e-5, Tensor.empty([4, 3]), Tensor.empty([4]), Tensor.empty([4]))).toThrow(ShapeError);
    expect(() => F.layerNormForward(x, Tensor.randn([3]), null, 0, Tensor.empty([4, 3]), Tensor.empty([4]), Tensor.empty([4]))).toThrow(InvalidArgumentError);
    expect(() => F.layerNormForward(x, Tensor.randn([3]), null, NaN, Tensor.empty([4, 3]), Tensor.empty([4]), Tensor.empty([4]))).toThrow(NotFiniteError);
    const mean = Tensor.empty([4]);
    expect(code(() => F.layerNormForward(x, Tensor.randn([3]), null, 1e-5, Tensor.empty([4, 3]), mean, mean))).toBe('ERR_INVALID_ARGUMENT');
    expect(() => F.rmsNormForward(x, Tensor.randn([3]), 1e-6, Tensor.empty([4, 3]), Tensor.empty([5]))).toThrow(ShapeError);
    expect(() => F.geluForward(x, Tensor.empty([3, 4]))).toThrow(ShapeError);
    expect(() => F.geluForward(x, Tensor.empty([4, 3]), 'fast' as never)).toThrow(InvalidArgumentError);
    expect(() => F.swigluForward(x, Tensor.randn([4, 2]), Tensor.empty([4, 3]))).toThrow(ShapeError);
    expect(() => F.dropoutForward(x, Tensor.empty([4, 3]), 1.5, 0)).toThrow(InvalidArgumentError);
    expect(() => F.dropoutForward(x, Tensor.empty([4, 3]), 0.5, -1)).toThrow(InvalidArgumentError);
    expect(() => F.dropoutForward(x, Tensor.empty([4, 3]), 0.5, 1.5)).toThrow(InvalidArgumentError);
  });

  it('attention and RoPE', () => {
    const q = Tensor.randn([2, 3, 4, 2]);
    const k = Tensor.randn([2, 3, 3, 2]);
    expect(() => F.attentionForward(q, k, k, Tensor.empty(q.shape), Tensor.empty([2, 4, 3]))).toThrow(ShapeError); // 3 ∤ 4
    const k2 = Tensor.randn([2, 3, 2, 2]);
    expect(() => F.attentionForward(q, k2, Tensor.randn([2, 3, 2, 3]), Tensor.empty(q.shape), Tensor.empty([2, 4, 3]))).toThrow(ShapeError);
    expect(() => F.attentionForward(q, k2, k2, Tensor.empty(q.shape), Tensor.empty([2, 3, 4]))).toThrow(ShapeError);
    expect(() => F.attentionForward(q, k2, k2, Tensor.empty(q.shape), Tensor.empty([2, 4, 3]), { mask: Tensor.randn([2, 4]) })).toThrow(ShapeError);
    expect(() => F.attentionForward(q, k2, k2, Tensor.empty(q.shape), Tensor.empty([2, 4, 3]), { scale: Infinity })).toThrow(NotFiniteError);
    expect(() => F.attentionForward(q, k2, k2, q, Tensor.empty([2, 4, 3]))).toThrow(/memory separate/);
    expect(() => F.attentionForward(Tensor.randn([2, 3, 4]), k2, k2, q, Tensor.empty([2, 4, 3]))).toThrow(ShapeError);
    expect(() => F.ropeForward(Tensor.randn([1, 2, 1, 3]), Tensor.empty([1, 2, 1, 3]))).toThrow(ShapeError);
    expect(() => F.ropeForward(q, Tensor.empty(q.shape), { convention: 'neox' as never })).toThrow(InvalidArgumentError);
    expect(() => F.ropeForward(q, Tensor.empty(q.shape), { offset: -1 })).toThrow(InvalidArgumentError);
    expect(() => F.ropeForward(q, Tensor.empty(q.shape), { base: 0.5 })).toThrow(InvalidArgumentError);
  });

  it('the native layer re-checks what TypeScript checks (raw addon calls)', () => {
    const a = native() as unknown as Record<string, (...args: unknown[]) => unknown>;
    const h = Tensor.randn([2, 3]).handle;
    expect(code(() => a['embeddingForward']!(new Float32Array(2), h, h))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => a['embeddingForward']!(Int32Array.from([0, 5]), h, Tensor.empty([2, 3]).handle))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => a['crossEntropy']!(h, Int32Array.from([0, 1]), null, { ignoreIndex: 0.5 }))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => a['ropeForward']!(h, h, { convention: 'x' }))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => a['ropeForward']!(h, h, {}))).toBe('ERR_SHAPE');
    expect(code(() => a['geluForward']!(h, h, 5))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => a['dropoutForward']!(h, h, 0.5, 2 ** 60))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => a['attentionForward']!(h, h, h, null, h, h, { causal: 1 }))).not.toBe('no error');
  });
});

describe('typed errors from the modules', () => {
  it('constructor options and call shapes', () => {
    expect(() => new nn.Linear(0, 3)).toThrow(InvalidArgumentError);
    expect(() => new nn.Linear(3, 3, { layout: 'dense' as never })).toThrow(InvalidArgumentError);
    expect(() => new nn.Linear(3, 3, { weight: Tensor.randn([2, 2]) })).toThrow(ShapeError);
    expect(() => new nn.Attention(8, { heads: 3 })).toThrow(InvalidArgumentError);
    expect(() => new nn.Attention(8, { heads: 4, kvHeads: 3 })).toThrow(InvalidArgumentError);
    expect(() => new nn.Attention(6, { heads: 3, rope: {} })).not.toThrow();
    expect(() => new nn.Attention(6, { heads: 6, rope: {} })).toThrow(InvalidArgumentError); // D = 1 is odd
    expect(() => new nn.Dropout(2)).toThrow(InvalidArgumentError);
    expect(() => new nn.LayerNorm(4, { eps: -1 })).toThrow(InvalidArgumentError);
    const lin = new nn.Linear(3, 2);
    expect(() => lin.forward(Tensor.randn([4, 5]))).toThrow(ShapeError);
    expect(() => lin.backward(Tensor.randn([4, 2]))).toThrow(/after Linear.forward/);
    const attn = new nn.Attention(8, { heads: 2 });
    expect(() => attn.forward(Tensor.randn([2, 8]))).toThrow(ShapeError);
    expect(() => attn.forward(Tensor.randn([1, 2, 8]), { mask: Tensor.randn([1, 3]) })).toThrow(ShapeError);
    const ce = new nn.CrossEntropyLoss();
    expect(() => ce.forward(Tensor.randn([2, 3]), [0, 1] as never)).toThrow(InvalidArgumentError);
  });
});

describe('random well-typed but mismatched calls to the nn bindings', () => {
  it('every call returns or throws a typed error (never crashes)', async () => {
    const { rng } = await import('../support/helpers.js');
    const a = native() as unknown as Record<string, (...args: unknown[]) => unknown>;
    const names = [
      'linearForward', 'linearBackward', 'embeddingForward', 'embeddingBackward', 'layerNormForward', 'layerNormBackward',
      'rmsNormForward', 'rmsNormBackward', 'geluForward', 'geluBackward', 'siluForward', 'siluBackward', 'swigluForward',
      'swigluBackward', 'crossEntropy', 'attentionForward', 'attentionBackward', 'ropeForward', 'ropeBackward',
      'dropoutForward', 'dropoutBackward', 'reluForward', 'reluBackward', 'gatedForward', 'gatedBackward',
    ];
    const shapes = [[2, 3], [3], [3, 2], [2, 2, 2, 2], [2, 3, 2, 2], [1, 3, 1, 2], [2, 3, 1, 2], [2, 2, 1, 2], [2, 4], [0, 3], [2, 0], [1], [2, 2, 2], [1, 1, 1, 0]];
    const pool: unknown[] = [
      ...shapes.map((s, i) => Tensor.randn(s, { seed: i }).handle),
      ...shapes.map((s, i) => Tensor.randn(s, { seed: 50 + i }).handle),
      Int32Array.from([0, 1]), Int32Array.from([1, 0, 2]), Int32Array.from([5, -1]), Int32Array.from([-100, 1]), new Int32Array(0), new Int32Array(6),
      null, undefined, 0, 0.5, 1, 1e-5, -1, 2, NaN, 'erf', 'tanh', 'gelu_tanh', 'relu', 'half', 'interleaved', {}, { causal: true }, { conv1d: true },
      { accumulateDx: true }, { offset: 3, convention: 'interleaved' }, { ignoreIndex: 1, dscale: 2 }, { scale: 0.1, causal: false },
    ];
    const r = rng(12345);
    for (const name of names) {
      const fn = a[name]!;
      for (let i = 0; i < 400; i++) {
        const n = 2 + Math.floor(r() * 9);
        const args = Array.from({ length: n }, () => pool[Math.floor(r() * pool.length)]);
        try {
          fn(...args);
        } catch (e) {
          if (!(e instanceof KfacError)) throw new Error(`${name} threw an untyped error: ${String(e)}`);
        }
      }
    }
  });
});

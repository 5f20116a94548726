"""An independent reference for llama2.c checkpoints: run.c's encode, forward and greedy
generation re-implemented with numpy (float64 by default, float32 with --f32).

It writes the prompt ids and the first N greedily generated ids after the prompt, with the
smallest gap between the best and second-best logit over those steps (how far the argmax is from
a tie: a gap far above float32 noise means any correct float32 implementation picks the same
ids).

Run: python tools/llama2c_reference.py ../shared/data/llama2c/stories260K.bin ../shared/data/llama2c/tok512.bin \
        --prompt "Once upon a time" --steps 64 --out test/fixtures/llama2c/stories260K-greedy.json
"""
import argparse
import json
import struct

import numpy as np


def read_checkpoint(path, dtype):
    raw = open(path, 'rb').read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack('<7i', raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = n_kv * hs
    data = np.frombuffer(raw, dtype='<f4', offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        a = data[off:off + n].reshape(shape).astype(dtype)
        off += n
        return a

    w = {}
    w['emb'] = take(vocab, dim)
    w['rms_att'] = take(n_layers, dim)
    w['wq'] = take(n_layers, dim, dim)
    w['wk'] = take(n_layers, kv_dim, dim)
    w['wv'] = take(n_layers, kv_dim, dim)
    w['wo'] = take(n_layers, dim, dim)
    w['rms_ffn'] = take(n_layers, dim)
    w['w1'] = take(n_layers, hidden, dim)
    w['w2'] = take(n_layers, dim, hidden)
    w['w3'] = take(n_layers, hidden, dim)
    w['rms_final'] = take(dim)
    off += seq_len * hs  # freq_cis_real, freq_cis_imag
    w['wcls'] = w['emb'] if shared else take(vocab, dim)
    assert off == data.size, (off, data.size)
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv, vocab=vocab, seq_len=seq_len)
    return cfg, w


def read_tokenizer(path, vocab):
    raw = open(path, 'rb').read()
    (max_len,) = struct.unpack('<i', raw[:4])
    off = 4
    pieces, scores = [], []
    for _ in range(vocab):
        score, n = struct.unpack('<fi', raw[off:off + 8])
        off += 8
        pieces.append(raw[off:off + n])
        scores.append(score)
        off += n
    return pieces, scores


def encode(text, pieces, scores, bos=True):
    """run.c encode(): BOS, the dummy-prefix space, code points (byte fallback +3), then merges by best score."""
    lookup = {p: i for i, p in enumerate(pieces)}
    tokens = [1] if bos else []
    if text:
        tokens.append(lookup[b' '])
    for ch in text:
        b = ch.encode('utf-8')
        if b in lookup:
            tokens.append(lookup[b])
        else:
            tokens.extend(x + 3 for x in b)
    while True:
        best, best_id, best_i = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            m = pieces[tokens[i]] + pieces[tokens[i + 1]]
            j = lookup.get(m)
            if j is not None and scores[j] > best:
                best, best_id, best_i = scores[j], j, i
        if best_i == -1:
            break
        tokens[best_i:best_i + 2] = [best_id]
    return tokens


def decode(prev, tok, pieces):
    p = pieces[tok]
    if prev == 1 and p.startswith(b' '):
        p = p[1:]
    s = p.decode('latin-1')
    if len(s) == 6 and s.startswith('<0x') and s.endswith('>'):
        return bytes([int(s[3:5], 16)])
    return p


class Forward:
    def __init__(self, cfg, w, dtype):
        self.c, self.w, self.dtype = cfg, w, dtype
        hs = cfg['dim'] // cfg['n_heads']
        self.kc = np.zeros((cfg['n_layers'], cfg['seq_len'], cfg['n_kv'] * hs), dtype)
        self.vc = np.zeros_like(self.kc)

    def rmsnorm(self, x, wt):
        ss = np.mean(x * x) + self.dtype(1e-5)
        return wt * (x / np.sqrt(ss))

    def __call__(self, token, pos):
        c, w, dt = self.c, self.w, self.dtype
        dim, H, Hkv = c['dim'], c['n_heads'], c['n_kv']
        hs = dim // H
        kv_mul = H // Hkv
        x = w['emb'][token].copy()
        for l in range(c['n_layers']):
            xb = self.rmsnorm(x, w['rms_att'][l])
            q = w['wq'][l] @ xb
            k = w['wk'][l] @ xb
            v = w['wv'][l] @ xb
            # RoPE on interleaved pairs (i, i + 1), frequency by the position inside the head.
            for i in range(0, dim, 2):
                head_dim = i % hs
                freq = 1.0 / (10000.0 ** (head_dim / hs))
                val = pos * freq
                fcr, fci = np.cos(val), np.sin(val)
                for vec in ((q, k) if i < Hkv * hs else (q,)):
                    v0, v1 = vec[i], vec[i + 1]
                    vec[i] = v0 * fcr - v1 * fci
                    vec[i + 1] = v0 * fci + v1 * fcr
            self.kc[l, pos] = k
            self.vc[l, pos] = v
            out = np.zeros(dim, dt)
            for h in range(H):
                qh = q[h * hs:(h + 1) * hs]
                g = h // kv_mul
                K = self.kc[l, :pos + 1, g * hs:(g + 1) * hs]
                V = self.vc[l, :pos + 1, g * hs:(g + 1) * hs]
                att = K @ qh / np.sqrt(dt(hs))
                att = np.exp(att - att.max())
                att /= att.sum()
                out[h * hs:(h + 1) * hs] = att @ V
            x = x + w['wo'][l] @ out
            xb = self.rmsnorm(x, w['rms_ffn'][l])
            h1 = w['w1'][l] @ xb
            h3 = w['w3'][l] @ xb
            hb = h1 / (1 + np.exp(-h1)) * h3
            x = x + w['w2'][l] @ hb
        x = self.rmsnorm(x, w['rms_final'])
        return w['wcls'] @ x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('checkpoint')
    ap.add_argument('tokenizer')
    ap.add_argument('--prompt', default='Once upon a time')
    ap.add_argument('--steps', type=int, default=64)
    ap.add_argument('--f32', action='store_true')
    ap.add_argument('--out')
    a = ap.parse_args()
    dtype = np.float32 if a.f32 else np.float64
    cfg, w = read_checkpoint(a.checkpoint, dtype)
    pieces, scores = read_tokenizer(a.tokenizer, cfg['vocab'])
    prompt = encode(a.prompt, pieces, scores)
    fwd = Forward(cfg, w, dtype)
    gen, gaps = [], []
    token = prompt[0]
    text = b''
    pos = 0
    # run.c's generate(): feed the prompt one token at a time, then argmax.
    while len(gen) < a.steps:
        logits = fwd(token, pos)
        if pos < len(prompt) - 1:
            nxt = prompt[pos + 1]
        else:
            order = np.argsort(-logits, kind='stable')
            nxt = int(order[0])
            gaps.append(float(logits[order[0]] - logits[order[1]]))
            gen.append(nxt)
        text += decode(token, nxt, pieces)
        token = nxt
        pos += 1
    res = {
        'checkpoint': 'stories260K.bin (sha256 b0a507e7…2696)',
        'tokenizer': 'tok512.bin',
        'reference': 'tools/llama2c_reference.py (numpy %s re-implementation of llama2.c run.c)' % ('float32' if a.f32 else 'float64'),
        'prompt': a.prompt,
        'promptIds': prompt,
        'generatedIds': gen,
        'minTop2Gap': min(gaps),
        'text': text.decode('utf-8', errors='replace'),
    }
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(res, f, indent=1)
            f.write('\n')


if __name__ == '__main__':
    main()

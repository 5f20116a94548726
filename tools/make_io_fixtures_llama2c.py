"""Expected values for the llama2.c checkpoint and tokenizer in ../shared/data/llama2c, from an
independent Python re-implementation of llama2.c's reader, encode() and decode() (run.c). Never run
in CI; rerun by hand:

    [KFAC_PEFT_DATA=/path/to/shared/data] python3 tools/make_io_fixtures_llama2c.py

Writes test/fixtures/io/llama2c/expected.json.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("KFAC_PEFT_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
MODEL = os.path.join(SHARED, "llama2c", "stories260K.bin")
TOK = os.path.join(SHARED, "llama2c", "tok512.bin")
OUT = os.path.join(HERE, "..", "test", "fixtures", "io", "llama2c", "expected.json")


def read_model():
    with open(MODEL, "rb") as f:
        raw = f.read()
    dim, hidden, layers, heads, kv, vocab, seq = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    head = dim // heads
    kvdim = kv * head
    # the order of llama2.c's export: name, count of float32s
    parts = [("token_embedding", vocab * dim), ("rms_att", layers * dim), ("wq", layers * dim * heads * head), ("wk", layers * dim * kvdim),
             ("wv", layers * dim * kvdim), ("wo", layers * heads * head * dim), ("rms_ffn", layers * dim), ("w1", layers * dim * hidden),
             ("w2", layers * hidden * dim), ("w3", layers * dim * hidden), ("rms_final", dim), ("freq_cis", seq * head)]
    if not shared:
        parts.append(("wcls", vocab * dim))
    offsets = {}
    at = 28
    for name, n in parts:
        offsets[name] = (at, n)
        at += 4 * n
    assert at == len(raw), (at, len(raw))
    params = sum(n for name, n in parts if name != "freq_cis")

    def floats(name, start, count):
        off, n = offsets[name]
        assert start + count <= n
        return list(struct.unpack(f"<{count}f", raw[off + 4 * start: off + 4 * (start + count)]))

    # a few values to pin the weight order: first 4 floats of some tensors of layer 0 and the last layer
    probes = {
        "model.embed_tokens.weight": floats("token_embedding", 0, 4),
        "model.layers.0.input_layernorm.weight": floats("rms_att", 0, 4),
        f"model.layers.{layers - 1}.self_attn.q_proj.weight": floats("wq", (layers - 1) * dim * dim, 4),
        f"model.layers.{layers - 1}.self_attn.k_proj.weight": floats("wk", (layers - 1) * dim * kvdim, 4),
        "model.layers.2.self_attn.v_proj.weight": floats("wv", 2 * dim * kvdim, 4),
        "model.layers.1.self_attn.o_proj.weight": floats("wo", 1 * dim * dim, 4),
        "model.layers.3.post_attention_layernorm.weight": floats("rms_ffn", 3 * dim, 4),
        "model.layers.0.mlp.gate_proj.weight": floats("w1", 0, 4),
        f"model.layers.{layers - 1}.mlp.down_proj.weight": floats("w2", (layers - 1) * hidden * dim, 4),
        "model.layers.2.mlp.up_proj.weight": floats("w3", 2 * dim * hidden, 4),
        "model.norm.weight": floats("rms_final", 0, 4),
    }
    return {"dim": dim, "hiddenDim": hidden, "nLayers": layers, "nHeads": heads, "nKvHeads": kv, "vocabSize": vocab, "seqLen": seq,
            "sharedClassifier": shared, "parameterCount": params, "fileBytes": len(raw), "probes": probes}


def read_tokenizer(vocab_size):
    with open(TOK, "rb") as f:
        raw = f.read()
    (max_len,) = struct.unpack("<I", raw[:4])
    at = 4
    vocab, scores = [], []
    for _ in range(vocab_size):
        (score,) = struct.unpack("<f", raw[at:at + 4])
        (n,) = struct.unpack("<I", raw[at + 4:at + 8])
        vocab.append(raw[at + 8:at + 8 + n])
        scores.append(score)
        at += 8 + n
    assert at == len(raw)
    return max_len, vocab, scores


def encode(vocab, scores, text, bos=True, eos=False):
    """llama2.c encode(): per UTF-8 character lookup with byte fallback, then greedy merges of the best-scoring pair."""
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)  # the first id of a repeated piece
    toks = []
    if bos:
        toks.append(1)
    data = text.encode("utf-8")
    if data:
        toks.append(lookup[b" "])
    # split into UTF-8 characters (at most 4 bytes; continuation bytes attach to the previous lead)
    chars, cur = [], b""
    for i, byte in enumerate(data):
        if byte & 0xC0 != 0x80:
            cur = b""
        cur += bytes([byte])
        nxt = data[i + 1] if i + 1 < len(data) else 0
        if nxt & 0xC0 == 0x80 and len(cur) < 4:
            continue
        chars.append(cur)
        cur = b""
    for c in chars:
        if c in lookup:
            toks.append(lookup[c])
        else:
            toks.extend(b + 3 for b in c)
    while True:
        best, best_id, best_idx = -1e10, -1, -1
        for i in range(len(toks) - 1):
            merged = vocab[toks[i]] + vocab[toks[i + 1]]
            j = lookup.get(merged, -1)
            if j != -1 and scores[j] > best:
                best, best_id, best_idx = scores[j], j, i
        if best_idx == -1:
            break
        toks[best_idx:best_idx + 2] = [best_id]
    if eos:
        toks.append(2)
    return toks


def decode(vocab, ids):
    out = b""
    prev = -1
    for t in ids:
        piece = vocab[t]
        if t in (0, 1, 2):  # <unk>, <s>, </s> are not text
            prev = t
            continue
        if prev == 1 and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            piece = bytes([int(piece[3:5], 16)])
        out += piece
        prev = t
    return out.decode("utf-8", errors="replace")


def main():
    model = read_model()
    max_len, vocab, scores = read_tokenizer(model["vocabSize"])
    texts = ["Once upon a time", "", "Hello world", "Lily's café, naïve 🤗!", "  two  spaces\nand a newline", "The cat sat on the mat. The dog ran."]
    cases = []
    for t in texts:
        ids = encode(vocab, scores, t)
        cases.append({"text": t, "ids": ids, "idsWithEos": encode(vocab, scores, t, bos=True, eos=True), "idsNoBos": encode(vocab, scores, t, bos=False), "decoded": decode(vocab, ids)})
    with open(OUT, "w") as f:
        json.dump({"source": "independent Python re-implementation of llama2.c run.c (tools/make_io_fixtures_llama2c.py)", "model": model,
                   "tokenizer": {"maxTokenLength": max_len, "vocabSize": len(vocab), "first": [v.decode("latin-1") for v in vocab[:5]], "scores": scores[:5], "lastPiece": vocab[-1].decode("utf-8", "replace"), "lastScore": scores[-1]},
                   "cases": cases}, f, ensure_ascii=False, indent=1)


main()

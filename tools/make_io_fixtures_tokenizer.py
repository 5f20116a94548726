"""Expected encodings of ../shared/data/tokenizers/bert-base-uncased by the reference libraries.
Never run in CI; rerun by hand:

    [KFAC_PEFT_DATA=/path/to/shared/data] .venv/bin/python tools/make_io_fixtures_tokenizer.py

Each case is encoded twice, by the Rust `tokenizers` library (Tokenizer.from_file with
enable_truncation / enable_padding) and by `transformers` (AutoTokenizer on the folder, the fast
tokenizer); the script stops if the two disagree, then writes
test/fixtures/io/tokenizer/expected.json (with the word-level and byte-level cases below).
"""
import json
import os
import sys

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
# <package root>/../shared/data, or KFAC_PEFT_DATA when the package is checked out elsewhere
SHARED = os.environ.get("KFAC_PEFT_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
DATA = os.path.join(SHARED, "tokenizers", "bert-base-uncased")
OUT = os.path.join(HERE, "..", "test", "fixtures", "io", "tokenizer", "expected.json")

SENTENCES = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé — Ångström, São Paulo, Zürich, façade.",
    "ÉCOLE Crème Brûlée",
    "Don't stop-believing!!! (really?) [yes] {no} 3.14159 $100 50% a+b=c #tag @user",
    "supercalifragilisticexpialidocious antidisestablishmentarianism xyzzyqwv",
    "我爱北京天安门 and 東京タワー, 한국어 텍스트",
    "emoji 🤗👍🏽 ∑∫ ☃ and a tab\there\nnewline   spaces",
    "",
    "UNAFFABLE unaffable Unaffable",
    "[CLS] special [SEP] tokens [MASK] inside [PAD] text [UNK]",
    "it's a truly long sentence that goes on and on so that truncation will certainly have to cut some of its many words off the end",
]
PAIRS = [
    ("How old are you?", "I am six years old."),
    ("Café au lait", "北京 is the capital"),
    ("", "only the second"),
    ("short", "a much longer second sentence with many more words in it than the first"),
    ("a much longer first sentence with many more words in it than the second", "short"),
    ("equal length one two three four", "equal length five six seven eight"),
]
TRUNC = [8, 9, 12, 16]


def rust(tok, a, b, max_length=None, pad=None):
    t = Tokenizer.from_file(os.path.join(DATA, "tokenizer.json"))
    if max_length is not None:
        t.enable_truncation(max_length=max_length, strategy="longest_first")
    if pad is not None:
        t.enable_padding(pad_id=0, pad_token="[PAD]", length=pad if pad != "longest" else None)
    return t


def enc_rust(a, b=None, max_length=None):
    t = rust(None, a, b, max_length)
    e = t.encode(a, b) if b is not None else t.encode(a)
    return {"ids": e.ids, "tokenTypeIds": e.type_ids, "attentionMask": e.attention_mask, "tokens": e.tokens}


def main():
    hf = AutoTokenizer.from_pretrained(DATA)
    assert hf.is_fast
    cases = []

    def add(kind, a, b=None, max_length=None):
        r = enc_rust(a, b, max_length)
        kw = {"truncation": "longest_first", "max_length": max_length} if max_length is not None else {}
        h = hf(a, b, return_token_type_ids=True, **kw) if b is not None else hf(a, return_token_type_ids=True, **kw)
        assert h["input_ids"] == r["ids"], (a, b, max_length, h["input_ids"], r["ids"])
        assert h["token_type_ids"] == r["tokenTypeIds"]
        assert h["attention_mask"] == r["attentionMask"]
        case = {"kind": kind, "text": a, **({"pair": b} if b is not None else {}), **({"maxLength": max_length} if max_length is not None else {}), **r}
        case["decoded"] = hf.decode(r["ids"], skip_special_tokens=True)
        case["decodedWithSpecial"] = hf.decode(r["ids"], skip_special_tokens=False)
        cases.append(case)

    for s in SENTENCES:
        add("single", s)
    for a, b in PAIRS:
        add("pair", a, b)
    for m in TRUNC:
        add("truncate", SENTENCES[-1], None, m)
        for a, b in PAIRS[3:]:
            add("truncate-pair", a, b, m)

    # batches: padding to the batch's longest, and to a fixed length with truncation
    batches = []
    batch = SENTENCES[:4]
    h = hf(batch, padding="longest", return_token_type_ids=True)
    t = Tokenizer.from_file(os.path.join(DATA, "tokenizer.json"))
    t.enable_padding(pad_id=0, pad_token="[PAD]")
    r = t.encode_batch(batch)
    assert [e.ids for e in r] == h["input_ids"] and [e.attention_mask for e in r] == h["attention_mask"]
    batches.append({"texts": batch, "padding": "longest", "ids": h["input_ids"], "tokenTypeIds": h["token_type_ids"], "attentionMask": h["attention_mask"]})
    pairs = [list(p) for p in PAIRS[:4]]
    h = hf([p[0] for p in pairs], [p[1] for p in pairs], padding="max_length", truncation="longest_first", max_length=14, return_token_type_ids=True)
    t = Tokenizer.from_file(os.path.join(DATA, "tokenizer.json"))
    t.enable_truncation(max_length=14, strategy="longest_first")
    t.enable_padding(pad_id=0, pad_token="[PAD]", length=14)
    r = t.encode_batch([tuple(p) for p in pairs])
    assert [e.ids for e in r] == h["input_ids"] and [e.type_ids for e in r] == h["token_type_ids"]
    batches.append({"texts": pairs, "padding": "max_length", "maxLength": 14, "ids": h["input_ids"], "tokenTypeIds": h["token_type_ids"], "attentionMask": h["attention_mask"]})

    # how the Rust library splits a pair's budget: texts of n1 and n2 single-token words
    split = []
    t = Tokenizer.from_file(os.path.join(DATA, "tokenizer.json"))
    for ml in range(3, 19):
        t.enable_truncation(max_length=ml, strategy="longest_first")
        for n1 in range(16):
            for n2 in range(16):
                e = t.encode(" ".join(["a"] * n1), " ".join(["b"] * n2))
                types = e.type_ids
                split.append([n1, n2, ml - 3, types.count(0) - 2, types.count(1) - 1])

    # small word-level tokenizers with the RoBERTa and template post-processors, built here
    from tokenizers import models, pre_tokenizers, processors
    small = {}
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate("the cat sat on a mat dog ran far away".split())}}
    for kind in ("roberta", "template"):
        t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        t.pre_tokenizer = pre_tokenizers.Whitespace()
        if kind == "roberta":
            t.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        else:
            t.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 0)])
        t.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>"])
        path = os.path.join(os.path.dirname(OUT), f"wordlevel-{kind}.json")
        t.save(path)
        encs = []
        for a, b, ml in [("the cat sat", None, None), ("the cat sat on a mat", "a dog ran far away", None), ("the cat sat on a mat", "a dog ran far away", 9), ("the zebra", "sat", None)]:
            tt = Tokenizer.from_file(path)
            if ml is not None:
                tt.enable_truncation(max_length=ml)
            e = tt.encode(a, b) if b is not None else tt.encode(a)
            encs.append({"text": a, **({"pair": b} if b is not None else {}), **({"maxLength": ml} if ml is not None else {}), "ids": e.ids, "tokenTypeIds": e.type_ids})
        small[kind] = encs

    # a byte-level BPE tokenizer in the GPT-2 style, trained here on the sentences above
    from tokenizers import ByteLevelBPETokenizer
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([s for s in SENTENCES + [p for pair in PAIRS for p in pair]] * 5, vocab_size=400, min_frequency=2, special_tokens=["<|endoftext|>"], show_progress=False)
    bpe_path = os.path.join(os.path.dirname(OUT), "bytelevel-bpe.json")
    bpe.save(bpe_path)
    t = Tokenizer.from_file(bpe_path)
    byte_level = []
    for text in SENTENCES + ["<|endoftext|> after a special token", "  leading spaces and trailing  "]:
        e = t.encode(text)
        byte_level.append({"text": text, "ids": e.ids, "decoded": t.decode(e.ids)})

    with open(OUT, "w") as f:
        json.dump(
            {
                "source": f"python {sys.version.split()[0]}, tokenizers {tokenizers.__version__}, transformers {transformers.__version__} (fast tokenizer); both agreed on every case",
                "vocabSize": hf.vocab_size,
                "cases": cases,
                "batches": batches,
                "pairSplit": split,
                "wordLevel": small,
                "byteLevel": byte_level,
            },
            f,
            ensure_ascii=False,
            separators=(",", ":"),
        )


main()

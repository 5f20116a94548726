"""Records what the Rust `tokenizers` library does with SentencePiece `Precompiled` charsmaps.

Trains two tiny SentencePiece Unigram models with the `sentencepiece` package:
- one with `normalization_rule_name='nmt_nfkc'` (the rule of T5 / Flan-T5), whose
  `precompiled_charsmap` goes into a T5-style tokenizer.json built as transformers'
  SpmConverter / T5Converter build one: normalizer Sequence[Precompiled, Strip(right),
  Replace(/ {2,}/, "▁")], Metaspace pre-tokenizer and decoder (prepended always), Unigram model
  with <pad> = 0, </s> = 1, <unk> = 2, a template appending </s>, and a few <extra_id_N> tokens;
- one with a small custom rule table (`normalization_rule_tsv`), for exact trie tests
  (rules sharing prefixes, grapheme-long keys, keys of 6+ bytes, deletions, long outputs).

Then records, from `tokenizers` (the Rust library):
- for every text of TEXTS: the pipeline's normalized string, the Precompiled normalizer's alone,
  ids and tokens;
- every code point where the nmt_nfkc charsmap and Python's NFKC disagree, with both results;
- a SHA-256 of the Precompiled normalisation of every code point (surrogates excepted), one hash
  per block of 4096 code points, so a test can check the whole code space;
- the custom charsmap (base64) and its normalisation of CUSTOM_TEXTS;
- which malformed charsmaps the Rust library refuses.

Writes test/fixtures/io/t5-precompiled/{tokenizer.json,expected.json}.

Run: /path/to/python tools/make_t5_precompiled_fixture.py   (needs sentencepiece, protobuf, tokenizers)
"""
import base64
import hashlib
import io
import json
import os
import shutil
import tempfile
import unicodedata

import sentencepiece as spm
import tokenizers
from sentencepiece import sentencepiece_model_pb2 as spm_pb
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'io', 't5-precompiled')

TEXTS = [
    'sst2 sentence: a gripping and moving film',
    'ＡＢＣ ｆｕｌｌ－ｗｉｄｔｈ ＬＡＴＩＮ １２３',
    'ﬁne ﬂow ligatures ﬀ ﬃ ﬄ ﬅ',
    'circled ① ② ⑳ ㉑ Ⓐ ⓐ',
    'superscripts x² y³ ⁴ ⁿ ₁ ₂ and fractions ½ ¼',
    'half-width ｶﾀｶﾅ ｶﾞｷﾞ ﾊﾟﾋﾟ ｰ',
    'Hangul jamo \u1100\u1161\u11a8 \u1112\u1161\u11ab compatibility ㄱㅏ',
    'combining e\u0301 a\u0300 n\u0303 o\u0308 Ａ\u0301 ｅ\u0301',
    'stacked a\u0301\u0302 o\u0301\u0302\u0303 e\u0301\u0301\u0301\u0301',
    'emoji 👍 👍🏽 👨\u200d👩\u200d👧\u200d👦 🏳️\u200d🌈 🇯🇵',
    'controls a\x01b\x07c\x1bd\x7fe\x0bf tab\there newline\nthere cr\rend',
    'nbsp a\u00a0b narrow\u202fnb ideographic\u3000space en\u2002em\u2003',
    'tilde ～ wave 〜 full-width ～～ and ~',
    'zero width a\u200bb a\u200cb a\u200db bom\ufeffx soft\u00adhyphen',
    'long clusters ก\u0e34\u0e4a\u0e4a\u0e4a क\u094d\u0937 \U0001F469\U0001F3FD\u200d\U0001F4BB',
    'roman Ⅻ ⅲ units ㎏ ㎞ ℃ ℉ № ™ ㈱ ㍿',
    'CJK compatibility 豈 更 車 and radicals ⼀ ⼈',
    'Greek ϐ ϑ ϕ ϖ µ Å K ẛ\u0323',
    'Arabic presentation ﻼ ﷺ ﷲ and Hebrew ﬠ ﬡ',
    'math 𝐀𝐁𝐂 𝔄 𝕏 𝟘𝟙 ∮ ∯',
    '  leading and   trailing   spaces  ',
    'replacement \ufffd char and private \ue000 use',
    'ｶﾞ',
    'e\u0301',
    'Ａ\u0301',
    '',
]

CUSTOM_RULES = [
    ('41', '78'),                 # A -> x
    ('41 42', '79'),              # AB -> y (two graphemes: never matched as one key)
    ('65 301', '45'),             # e + acute -> E (a grapheme of 3 bytes)
    ('65', '65 65'),              # e -> ee (shorter key than the rule above)
    ('61 301 302', '5A'),         # a + acute + circumflex -> Z (5 bytes)
    ('6F 301 302 303', '51'),     # o + three accents -> Q (7 bytes: looked up char by char)
    ('301', '2D'),                # lone acute -> -
    ('1F600', '73 6D 69 6C 65'),  # grinning face -> smile
    ('3000', '20'),               # ideographic space -> space
    ('FF21', '41'),               # full-width A -> A (not re-normalised to x)
    ('2460', '31 31 31 31 31 31 31 31'),  # circled one -> 11111111
    ('E9', '65 301'),             # precomposed e-acute -> decomposed
    ('7F', ''),                   # DEL -> nothing
    ('4E00', '4E8C'),             # 一 -> 二
]

CUSTOM_TEXTS = [
    'A', 'AB', 'ABA', 'e', 'e\u0301', 'ee\u0301e', 'a\u0301\u0302', 'a\u0301', 'o\u0301\u0302\u0303', 'o\u0301',
    '\u0301', 'x\u0301\u0301', '😀', '😀\u0301', 'a\u3000b', 'Ａ', 'Ａ\u0301', '①', '①\u0301', 'é', 'a\x7fb', '一二',
    'plain ascii text', '', 'Ae\u0301\u0301\u0301\u0301\u0301😀',
]

CORPUS_EXTRA = [
    'the cat sat on the mat', 'a gripping and moving film', 'fine flow ligatures', 'full width latin abc 123',
    'circled 1 2 20 21 a', 'superscripts x2 y3 4 n 1 2 fractions 1/4 1/2', 'カタカナ ガギ パピ ー',
    '각 한 ㄱㅏ', 'café naïve señor öl', 'emoji', 'controls tab newline', 'tilde 〜 ~', 'roman units kg km',
    '豈 更 車 一 人', 'Greek β θ φ π μ å k', 'Arabic لا Hebrew', 'math ABC X 01', 'sentence translate summarize',
]


def train(rule_kwargs, corpus, vocab_size):
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=vocab_size, model_type='unigram',
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False,
        minloglevel=2, **rule_kwargs)
    proto = spm_pb.ModelProto()
    proto.ParseFromString(buf.getvalue())
    return proto


def t5_tokenizer(proto, extra_ids=3):
    charsmap = proto.normalizer_spec.precompiled_charsmap
    vocab = [(p.piece, p.score) for p in proto.pieces] + [(f'<extra_id_{i}>', 0.0) for i in range(extra_ids - 1, -1, -1)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap), normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(' {2,}'), '▁')])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement='▁', prepend_scheme='always')
    tok.decoder = decoders.Metaspace(replacement='▁', prepend_scheme='always')
    tok.post_processor = processors.TemplateProcessing(single=['$A', '</s>'], pair=['$A', '</s>', '$B', '</s>'], special_tokens=[('</s>', 1)])
    tok.add_special_tokens(['<pad>', '</s>', '<unk>'] + [f'<extra_id_{i}>' for i in range(extra_ids - 1, -1, -1)])
    return tok, charsmap


def code_points():
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


def main():
    corpus = CORPUS_EXTRA * 30 + [t for t in TEXTS if t.strip()] * 5
    proto = train({'normalization_rule_name': 'nmt_nfkc'}, corpus, 400)
    tok, charsmap = t5_tokenizer(proto)
    pre = normalizers.Precompiled(charsmap)
    assert tok.token_to_id('<pad>') == 0 and tok.token_to_id('</s>') == 1 and tok.token_to_id('<unk>') == 2

    cases = []
    for t in TEXTS:
        e = tok.encode(t)
        cases.append({'text': t, 'normalized': tok.normalizer.normalize_str(t), 'precompiled': pre.normalize_str(t), 'ids': e.ids, 'tokens': e.tokens})

    # the whole code space: a hash per block of 4096 code points; and NFKC mismatches
    blocks = {}
    mismatches = []
    for cp in code_points():
        c = chr(cp)
        r = pre.normalize_str(c)
        blocks.setdefault(cp >> 12, hashlib.sha256()).update(r.encode('utf-8') + b'\0')
        if r != unicodedata.normalize('NFKC', c):
            mismatches.append(cp)
    sweep = [{'cp': cp, 'rust': pre.normalize_str(chr(cp)), 'nfkc': unicodedata.normalize('NFKC', chr(cp))} for cp in mismatches]

    with tempfile.TemporaryDirectory() as tmp:
        custom_tsv = os.path.join(tmp, 'rules.tsv')
        with open(custom_tsv, 'w') as f:
            for src, dst in CUSTOM_RULES:
                f.write(f'{src}\t{dst}\n')
        custom = train({'normalization_rule_tsv': custom_tsv}, CORPUS_EXTRA * 10, 100)
    custom_map = custom.normalizer_spec.precompiled_charsmap
    cpre = normalizers.Precompiled(custom_map)
    custom_cases = [{'text': t, 'normalized': cpre.normalize_str(t)} for t in CUSTOM_TEXTS]

    refused = {}
    for label, b64 in (('empty', ''), ('four zero bytes', 'AAAAAA=='), ('bad base64', '!!!')):
        base = json.loads(tok.to_str())
        base['normalizer'] = {'type': 'Precompiled', 'precompiled_charsmap': b64}
        try:
            Tokenizer.from_str(json.dumps(base)).normalizer.normalize_str('ＡＢ')
            refused[label] = False
        except BaseException:  # the Rust library panics (pyo3 PanicException derives from BaseException)
            refused[label] = True

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    tok.save(os.path.join(OUT, 'tokenizer.json'))
    exp = {
        'tokenizers': tokenizers.__version__, 'sentencepiece': spm.__version__, 'unicode': unicodedata.unidata_version,
        'charsmapBytes': len(charsmap), 'cases': cases, 'mismatchCount': len(mismatches), 'sweep': sweep,
        'blockHashes': {str(k): v.hexdigest() for k, v in sorted(blocks.items())},
        'custom': {'rules': [list(r) for r in CUSTOM_RULES], 'charsmap': base64.b64encode(custom_map).decode('ascii'), 'cases': custom_cases},
        'rustRefuses': refused,
    }
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(exp, f, ensure_ascii=False, indent=1)
    print(tok.get_vocab_size(), len(charsmap), len(custom_map), len(mismatches), refused)
    for c in custom_cases:
        print(repr(c['text']), '->', repr(c['normalized']))


if __name__ == '__main__':
    main()

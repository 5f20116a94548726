"""Trains a tiny T5-style SentencePiece Unigram tokenizer.json and records what `tokenizers` makes of it.

The pipeline is that of a T5 / Flan-T5 tokenizer.json: a Unigram model with <pad> = 0, </s> = 1,
<unk> = 2; WhitespaceSplit then Metaspace ("▁", prepended always) pre-tokenization; a template
that appends </s> (pairs: "$A </s> $B </s>"); the Metaspace decoder. The normalizer is NFKC
(real T5 files use a Precompiled sentencepiece charsmap, which this script cannot build without
sentencepiece; the charsmap of T5 is nmt_nfkc, NFKC plus whitespace clean-up).

Writes test/fixtures/io/t5-tokenizer/tokenizer.json and expected.json (ids, tokens and decoded
text of a set of strings), and copies tokenizer.json into the T5 model fixtures (their vocabulary
of 96 ids holds the tokenizer's).

Run: python3 tools/make_t5_tokenizer_fixture.py   (needs tokenizers)
"""
import json
import os
import shutil

import tokenizers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'io', 't5-tokenizer')
MODELS = os.path.join(HERE, '..', 'test', 'fixtures', 'models')

CORPUS = [
    'sst2 sentence: a gripping and moving film', 'sst2 sentence: the plot is thin and the acting is worse',
    'positive', 'negative', 'translate English to German: the house is wonderful',
    'summarize: the cat sat on the mat and looked at the dog', 'it is a good movie with a bad ending',
    'the best film of the year', 'a waste of time', 'mrpc sentence1: he said hello sentence2: he greeted them',
    'rte premise: a man is sleeping hypothesis: nobody sleeps', 'entailment', 'not_entailment', 'equivalent',
] * 20

TEXTS = [
    'sst2 sentence: a gripping film', 'positive', 'negative', 'the acting is worse than the plot',
    '  extra   spaces  here ', 'unseen zebra quokka', 'Capital Letters And Digits 12345', 'ﬁne ligature and full-width ＡＢＣ',
    'accents: café naïve', '', 'translate English to German: the house', 'not_entailment',
]


def main():
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement='▁', prepend_scheme='always')])
    tok.decoder = decoders.Metaspace(replacement='▁', prepend_scheme='always')
    trainer = trainers.UnigramTrainer(vocab_size=96, special_tokens=['<pad>', '</s>', '<unk>'], unk_token='<unk>', shrinking_factor=0.75, max_piece_length=8)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single='$A </s>', pair='$A </s> $B </s>', special_tokens=[('</s>', tok.token_to_id('</s>'))])
    assert tok.token_to_id('<pad>') == 0 and tok.token_to_id('</s>') == 1 and tok.token_to_id('<unk>') == 2
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    path = os.path.join(OUT, 'tokenizer.json')
    tok.save(path)
    cases = []
    for t in TEXTS:
        e = tok.encode(t)
        cases.append({'text': t, 'ids': e.ids, 'tokens': e.tokens, 'decoded': tok.decode(e.ids, skip_special_tokens=True)})
    pair = tok.encode('premise text', 'hypothesis text')
    exp = {'tokenizers': tokenizers.__version__, 'vocabSize': tok.get_vocab_size(), 'cases': cases,
           'pair': {'a': 'premise text', 'b': 'hypothesis text', 'ids': pair.ids}}
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(exp, f, ensure_ascii=False, indent=1)
    for m in ('t5-v1_0', 't5-v1_1'):
        if os.path.isdir(os.path.join(MODELS, m)):
            shutil.copy(path, os.path.join(MODELS, m, 'tokenizer.json'))
    print(tok.get_vocab_size(), [c['tokens'] for c in cases[:4]])


if __name__ == '__main__':
    main()

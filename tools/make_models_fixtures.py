"""Writes tiny randomly initialised Hugging Face checkpoints and their reference outputs.

For each case: test/fixtures/models/<name>/config.json and model.safetensors (saved by
transformers' save_pretrained), and expected.json with the batch, the logits of the model in
float32 eval mode (attn_implementation="eager"), the loss for the batch's labels, and the
gradients of that loss with respect to a few parameters.

Run: python tools/make_models_fixtures.py   (needs torch, transformers, safetensors)
"""
import json
import os
import shutil

import torch
import transformers
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification, GPT2Config, GPT2ForSequenceClassification,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, RobertaConfig, RobertaForSequenceClassification)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'models')


def rounded(t):
    return [float(f'{v:.8g}') for v in t.detach().reshape(-1).tolist()]


def save(name, model, batch, grads, labels=None, note=''):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    for extra in ('generation_config.json',):
        p = os.path.join(out, extra)
        if os.path.exists(p):
            os.remove(p)
    model.eval()
    kw = {k: torch.tensor(v).reshape(batch['shape']) for k, v in batch.items() if k in ('input_ids', 'attention_mask', 'token_type_ids')}
    if labels is not None:
        kw['labels'] = torch.tensor(labels['values'], dtype=labels['dtype']).reshape(labels['shape'])
    model.zero_grad()
    res = model(**kw)
    res.loss.backward()
    params = dict(model.named_parameters())
    exp = {
        'note': note,
        'versions': {'torch': torch.__version__, 'transformers': transformers.__version__},
        'shape': batch['shape'],
        'inputIds': batch['input_ids'],
        'attentionMask': batch.get('attention_mask'),
        'tokenTypeIds': batch.get('token_type_ids'),
        'labels': labels['values'] if labels else None,
        'logitsShape': list(res.logits.shape),
        'logits': rounded(res.logits),
        'loss': float(res.loss),
        'grads': {g: {'shape': list(params[g].shape), 'values': rounded(params[g].grad)} for g in grads},
    }
    with open(os.path.join(out, 'expected.json'), 'w') as f:
        json.dump(exp, f)
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)}
    print(name, sizes)


def main():
    torch.manual_seed(0)
    os.makedirs(ROOT, exist_ok=True)
    B, T = 2, 7
    mask = [1] * T + [1] * (T - 2) + [0, 0]  # right padding on the second row

    def ids(vocab, pad=None, seed=1):
        g = torch.Generator().manual_seed(seed)
        v = torch.randint(2, vocab, (B * T,), generator=g).tolist()
        if pad is not None:
            for i, m in enumerate(mask):
                if m == 0:
                    v[i] = pad
        return v

    # LLaMA with grouped-query attention (4 query heads, 2 key/value heads), untied head.
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0,
                      tie_word_embeddings=False, initializer_range=0.1, attn_implementation='eager')
    m = LlamaForCausalLM(cfg).float()
    x = ids(64)
    lab = [v if mk else -100 for v, mk in zip(x, mask)]
    save('llama-gqa', m, {'shape': [B, T], 'input_ids': x, 'attention_mask': mask},
         ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight', 'model.layers.1.mlp.down_proj.weight',
          'model.layers.1.input_layernorm.weight', 'model.norm.weight'],
         {'values': lab, 'dtype': torch.long, 'shape': [B, T]}, 'LlamaForCausalLM, GQA 4/2 heads, untied, right padding')

    # Qwen2: q/k/v biases, tied embeddings.
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=1000000.0,
                      tie_word_embeddings=True, initializer_range=0.1, attn_implementation='eager')
    m = Qwen2ForCausalLM(cfg).float()
    x = ids(64, seed=2)
    save('qwen2-tied', m, {'shape': [B, T], 'input_ids': x}, ['model.layers.0.self_attn.q_proj.bias', 'model.embed_tokens.weight'],
         {'values': x, 'dtype': torch.long, 'shape': [B, T]}, 'Qwen2ForCausalLM, q/k/v bias, tied embeddings')

    # LLaMA sequence classification: score on the last non-pad token.
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, num_labels=3,
                      initializer_range=0.1, attn_implementation='eager')
    m = LlamaForSequenceClassification(cfg).float()
    x = ids(64, pad=0, seed=3)
    save('llama-cls', m, {'shape': [B, T], 'input_ids': x, 'attention_mask': mask}, ['score.weight', 'model.layers.1.self_attn.v_proj.weight'],
         {'values': [2, 0], 'dtype': torch.long, 'shape': [B]}, 'LlamaForSequenceClassification, 3 labels, pad 0')

    # BERT with token types and padding.
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                     max_position_embeddings=32, type_vocab_size=2, num_labels=2, initializer_range=0.2,
                     attn_implementation='eager')
    m = BertForSequenceClassification(cfg).float()
    x = ids(50, pad=0, seed=4)
    tt = [0, 0, 0, 0, 1, 1, 1] + [0, 0, 1, 1, 1, 0, 0]
    save('bert-cls', m, {'shape': [B, T], 'input_ids': x, 'attention_mask': mask, 'token_type_ids': tt},
         ['bert.encoder.layer.0.attention.self.query.weight', 'bert.encoder.layer.1.output.dense.weight', 'bert.embeddings.LayerNorm.weight',
          'bert.pooler.dense.weight', 'classifier.weight'],
         {'values': [1, 0], 'dtype': torch.long, 'shape': [B]}, 'BertForSequenceClassification, token types, right padding')

    # BERT regression (num_labels = 1: MSE loss).
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
                     max_position_embeddings=32, num_labels=1, initializer_range=0.2, attn_implementation='eager')
    m = BertForSequenceClassification(cfg).float()
    save('bert-reg', m, {'shape': [B, T], 'input_ids': ids(50, pad=0, seed=5), 'attention_mask': mask}, ['classifier.weight'],
         {'values': [0.5, -1.25], 'dtype': torch.float32, 'shape': [B, 1]}, 'BertForSequenceClassification regression')

    # RoBERTa: positions from padding_idx + 1, classifier.dense / out_proj.
    cfg = RobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        max_position_embeddings=40, type_vocab_size=1, pad_token_id=1, num_labels=3, initializer_range=0.2,
                        attn_implementation='eager')
    m = RobertaForSequenceClassification(cfg).float()
    save('roberta-cls', m, {'shape': [B, T], 'input_ids': ids(50, pad=1, seed=6), 'attention_mask': mask},
         ['roberta.encoder.layer.1.attention.self.value.weight', 'classifier.dense.weight', 'roberta.embeddings.position_embeddings.weight'],
         {'values': [2, 1], 'dtype': torch.long, 'shape': [B]}, 'RobertaForSequenceClassification, pad 1')

    # DistilBERT.
    cfg = DistilBertConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=32,
                           num_labels=2, initializer_range=0.2, attn_implementation='eager')
    m = DistilBertForSequenceClassification(cfg).float()
    save('distilbert-cls', m, {'shape': [B, T], 'input_ids': ids(50, pad=0, seed=7), 'attention_mask': mask},
         ['distilbert.transformer.layer.0.attention.q_lin.weight', 'pre_classifier.weight'],
         {'values': [0, 1], 'dtype': torch.long, 'shape': [B]}, 'DistilBertForSequenceClassification')

    # GPT-2 LM (tied head, Conv1D layout).
    cfg = GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32, initializer_range=0.1,
                     attn_implementation='eager')
    m = GPT2LMHeadModel(cfg).float()
    x = ids(64, seed=8)
    lab = [v if mk else -100 for v, mk in zip(x, mask)]
    save('gpt2-lm', m, {'shape': [B, T], 'input_ids': x, 'attention_mask': mask},
         ['transformer.h.0.attn.c_attn.weight', 'transformer.h.1.mlp.c_fc.weight', 'transformer.wte.weight', 'transformer.wpe.weight',
          'transformer.ln_f.bias'],
         {'values': lab, 'dtype': torch.long, 'shape': [B, T]}, 'GPT2LMHeadModel, tied, right padding')

    # GPT-2 classification on the last non-pad token.
    cfg = GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32, pad_token_id=0, num_labels=2,
                     initializer_range=0.1, attn_implementation='eager')
    m = GPT2ForSequenceClassification(cfg).float()
    save('gpt2-cls', m, {'shape': [B, T], 'input_ids': ids(64, pad=0, seed=9), 'attention_mask': mask},
         ['score.weight', 'transformer.h.1.attn.c_proj.weight'], {'values': [1, 0], 'dtype': torch.long, 'shape': [B]},
         'GPT2ForSequenceClassification, pad 0')

    # Mistral (same architecture below its sliding window), GQA 4/1.
    cfg = MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=1, max_position_embeddings=64, sliding_window=16, rms_norm_eps=1e-5,
                        rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.1, attn_implementation='eager')
    m = MistralForCausalLM(cfg).float()
    x = ids(64, seed=10)
    save('mistral-lm', m, {'shape': [B, T], 'input_ids': x}, ['model.layers.0.self_attn.k_proj.weight', 'lm_head.weight'],
         {'values': x, 'dtype': torch.long, 'shape': [B, T]}, 'MistralForCausalLM, GQA 4/1, sliding window 16 > T')


if __name__ == '__main__':
    main()

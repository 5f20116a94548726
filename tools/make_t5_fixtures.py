"""Writes tiny randomly initialised T5ForConditionalGeneration checkpoints and their references.

For each case, test/fixtures/models/<name>/: config.json and model.safetensors (as a Hugging Face
folder holds them), and expected.json with a fixed source/target batch, the logits of the model
in float32 eval mode, the loss for the batch's labels, the gradients of that loss with respect to
a few parameters, and the token ids that transformers' generate() returns (greedy and beam).
Also test/fixtures/peft/t5-v1_1-lora: a PEFT LoRA adapter (q, v) of t5-v1_1 with its logits; and
test/fixtures/io/t5-buckets.json: transformers' relative position buckets for a range of
relative positions and bucket settings.

- t5-v1_0: ReLU feed-forward, head tied to the shared embedding (decoder output scaled by
  d_model^-0.5); config.json as transformers v5 writes it (with scale_decoder_outputs).
- t5-v1_1: gated-GELU feed-forward, untied lm_head, more decoder than encoder layers, d_kv not
  d_model / heads; config.json as a Flan-T5 folder has it (tie_word_embeddings: false).

Run: python3 tools/make_t5_fixtures.py   (needs torch, transformers, safetensors)

generate() runs with use_cache=False: with more decoder than encoder layers, transformers 5.18
sizes its cache by the encoder and fails; without a cache the tokens are the same by definition.
"""
import json
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'models')

SRC = [[5, 17, 42, 8, 77, 3, 1], [9, 33, 61, 1, 0, 0, 0]]
SRC_MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]]
LABELS = [[12, 40, 7, 90, 1], [23, 4, 1, -100, -100]]


def rounded(t):
    return [float(f'{v:.8g}') for v in t.detach().reshape(-1).tolist()]


def build(name, cfg, untie):
    torch.manual_seed(1234)
    model = T5ForConditionalGeneration(T5Config(**cfg))
    # Random weights with a visible scale everywhere (the default init makes some layers tiny).
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if 'relative_attention_bias' in n else 1.0 if 'layer_norm' not in n else 0.2) + (1.0 if 'layer_norm' in n else 0.0))
            if n.endswith('.weight') and p.dim() == 2 and 'relative_attention_bias' not in n and n != 'shared.weight':
                p.mul_(p.shape[1] ** -0.5)
    out = os.path.join(ROOT, name)
    tok = os.path.join(out, 'tokenizer.json')  # written by tools/make_t5_tokenizer_fixture.py; kept
    tok_json = open(tok, 'rb').read() if os.path.exists(tok) else None
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    if tok_json is not None:
        with open(tok, 'wb') as f:
            f.write(tok_json)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    for k in ('encoder.embed_tokens.weight', 'decoder.embed_tokens.weight'):
        sd.pop(k, None)
    if untie:
        sd['lm_head.weight'] = torch.randn(cfg['vocab_size'], cfg['d_model']) * cfg['d_model'] ** -0.5
    else:
        sd.pop('lm_head.weight', None)
    save_file(sd, os.path.join(out, 'model.safetensors'), metadata={'format': 'pt'})
    model.config.architectures = ['T5ForConditionalGeneration']
    model.config.save_pretrained(out)
    cfg_path = os.path.join(out, 'config.json')
    with open(cfg_path) as f:
        j = json.load(f)
    if untie:  # the form of a Flan-T5 folder written by transformers v4
        j['tie_word_embeddings'] = False
        j.pop('scale_decoder_outputs', None)
    with open(cfg_path, 'w') as f:
        json.dump(j, f, indent=2)
    return out


def reference(out, grads, note):
    model = T5ForConditionalGeneration.from_pretrained(out, attn_implementation='eager')
    model.eval()
    src = torch.tensor(SRC)
    mask = torch.tensor(SRC_MASK)
    labels = torch.tensor(LABELS)
    model.zero_grad()
    res = model(input_ids=src, attention_mask=mask, labels=labels)
    res.loss.backward()
    params = dict(model.named_parameters())
    gen = {}
    with torch.no_grad():
        for i, row in enumerate(SRC):
            n = sum(SRC_MASK[i])
            ids = torch.tensor([row[:n]])
            g = model.generate(ids, max_new_tokens=8, do_sample=False, num_beams=1, use_cache=False)
            b = model.generate(ids, max_new_tokens=8, do_sample=False, num_beams=3, use_cache=False)
            b2 = model.generate(ids, max_new_tokens=6, do_sample=False, num_beams=4, length_penalty=0.5, use_cache=False)
            gen[f'row{i}'] = {'source': row[:n], 'greedy': g[0].tolist(), 'beam3': b[0].tolist(), 'beam4_lp05_max6': b2[0].tolist()}
            # A token of the greedy and beam outputs as the end-of-sequence id: generation stops there.
            for k, (nb, eos) in {'greedy_eos': (1, g[0, 4].item()), 'beam3_eos': (3, b[0, 3].item())}.items():
                e = model.generate(ids, max_new_tokens=8, do_sample=False, num_beams=nb, eos_token_id=eos, use_cache=False)
                gen[f'row{i}'][k] = {'eos': eos, 'ids': e[0].tolist()}
        gb = model.generate(src, attention_mask=mask, max_new_tokens=8, do_sample=False, num_beams=1, use_cache=False)
        gen['batch_greedy'] = gb.tolist()
    exp = {
        'note': note,
        'versions': {'torch': torch.__version__, 'transformers': transformers.__version__},
        'inputIds': SRC,
        'attentionMask': SRC_MASK,
        'labels': LABELS,
        'logitsShape': list(res.logits.shape),
        'logits': rounded(res.logits),
        'loss': float(res.loss),
        'grads': {g: {'shape': list(params[g].shape), 'values': rounded(params[g].grad)} for g in grads},
        'generate': gen,
    }
    with open(os.path.join(out, 'expected.json'), 'w') as f:
        json.dump(exp, f)
    print(os.path.basename(out), {f: os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)}, gen)


def lora_adapter(base):
    """A PEFT LoRA adapter (q and v, random non-zero B) on `base`, with the logits it gives."""
    import peft
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(99)
    model = T5ForConditionalGeneration.from_pretrained(base, attn_implementation='eager')
    # No task_type: peft 0.21's SEQ_2_SEQ_LM wrapper calls a generation helper transformers 5.18 no
    # longer has; the generic PeftModel saves the same keys (base_model.model.…) with task_type null.
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=['q', 'v'])
    pm = get_peft_model(model, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if 'lora_B' in n:
                p.copy_(torch.randn_like(p) * 0.3)
    out = os.path.join(ROOT, '..', 'peft', 't5-v1_1-lora')
    shutil.rmtree(out, ignore_errors=True)
    pm.save_pretrained(out)
    cfg_file = os.path.join(out, 'adapter_config.json')
    with open(cfg_file) as f:
        j = json.load(f)
    j['base_model_name_or_path'] = 'test/fixtures/models/t5-v1_1'  # not this machine's absolute path
    with open(cfg_file, 'w') as f:
        json.dump(j, f, indent=2, sort_keys=True)
    for extra in ('README.md',):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    pm.eval()
    with torch.no_grad():
        res = pm(input_ids=torch.tensor(SRC), attention_mask=torch.tensor(SRC_MASK), labels=torch.tensor(LABELS))
    with open(os.path.join(out, 'expected.json'), 'w') as f:
        json.dump({'peft': peft.__version__, 'logits': rounded(res.logits), 'loss': float(res.loss)}, f)
    print('t5-v1_1-lora', {f: os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)})


def buckets():
    from transformers.models.t5.modeling_t5 import T5Attention
    rel = torch.arange(-300, 301)
    cases = []
    for nb, md in ((8, 20), (32, 128), (16, 50), (7, 9)):
        for bi in (True, False):
            b = T5Attention._relative_position_bucket(rel, bidirectional=bi, num_buckets=nb, max_distance=md)
            cases.append({'numBuckets': nb, 'maxDistance': md, 'bidirectional': bi, 'buckets': b.tolist()})
    with open(os.path.join(ROOT, '..', 'io', 't5-buckets.json'), 'w') as f:
        json.dump({'relative': rel.tolist(), 'cases': cases}, f)


def main():
    base = dict(vocab_size=96, d_model=24, d_kv=5, num_heads=3, d_ff=40, num_layers=2, relative_attention_num_buckets=8,
                relative_attention_max_distance=20, dropout_rate=0.1, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    v10 = build('t5-v1_0', dict(base, feed_forward_proj='relu', d_kv=8), untie=False)
    reference(v10, ['shared.weight', 'encoder.block.0.layer.0.SelfAttention.q.weight', 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
                    'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'decoder.block.1.layer.1.EncDecAttention.k.weight',
                    'decoder.block.0.layer.2.DenseReluDense.wi.weight', 'encoder.final_layer_norm.weight', 'encoder.block.1.layer.1.DenseReluDense.wo.weight'],
              'T5 v1.0: ReLU FF, tied head scaled by d_model^-0.5')
    v11 = build('t5-v1_1', dict(base, feed_forward_proj='gated-gelu', num_decoder_layers=3, tie_word_embeddings=False), untie=True)
    reference(v11, ['shared.weight', 'lm_head.weight', 'encoder.block.1.layer.0.SelfAttention.v.weight', 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
                    'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'decoder.block.2.layer.1.EncDecAttention.q.weight',
                    'decoder.block.1.layer.2.DenseReluDense.wi_0.weight', 'decoder.block.1.layer.2.DenseReluDense.wi_1.weight', 'decoder.final_layer_norm.weight'],
              'T5 v1.1 / Flan-T5: gated-GELU (tanh) FF, untied lm_head')
    lora_adapter(v11)
    buckets()


if __name__ == '__main__':
    main()

"""Writes Hugging Face PEFT prompt- and prefix-tuning adapters of tiny T5 models (SEQ_2_SEQ_LM), and checks ours.

  python3 tools/make_peft_t5_prompt_prefix_fixtures.py
      test/fixtures/peft/<case>/ for each case below: adapter_config.json + adapter_model.safetensors
      written by peft's save_pretrained (random init), and expected.json: a source/target batch, the
      float32 eval-mode logits [B, Tt, V] and loss of the adapted model, and the token ids that
      PEFT's generate() returns for each source row (greedy, and beam search with 3 beams). The
      seed of each case's initialisation is one whose greedy and beam ids differ from the base
      model's on at least one source (so that a dropped prompt or prefix shows); the script fails
      otherwise.
  python3 tools/make_peft_t5_prompt_prefix_fixtures.py CASE …
      only those cases.
      prefix-t5-v1_1 brings its own base model (test/fixtures/peft/prefix-t5-v1_1/base): PEFT sizes
      the prefix by d_model and num_layers, so it needs heads·d_kv = d_model and as many decoder as
      encoder layers, which test/fixtures/models/t5-v1_1 deliberately does not have.
  python3 tools/make_peft_t5_prompt_prefix_fixtures.py --check DIR CASE
      loads DIR (a folder saved by this library, with CASE's expected.json) with peft's
      PeftModel.from_pretrained onto CASE's base model and prints the largest |logit difference|.

peft 0.21's PeftModelForSeq2SeqLM reads `_prepare_encoder_decoder_kwargs_for_generation`, which
transformers 5.18 renamed; the script aliases the old name to the new one (PEFT only stores it).
Needs torch, transformers, peft, safetensors.
"""
import json
import os
import shutil
import sys
import warnings

import peft
import torch
import transformers
from peft import PeftModel, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

warnings.filterwarnings('ignore')
if not hasattr(T5ForConditionalGeneration, '_prepare_encoder_decoder_kwargs_for_generation'):
    T5ForConditionalGeneration._prepare_encoder_decoder_kwargs_for_generation = T5ForConditionalGeneration._prepare_text_encoder_decoder_kwargs_for_generation

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, '..', 'test', 'fixtures', 'models')
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'peft')

SRC = [[5, 17, 42, 8, 77, 3, 1], [9, 33, 61, 1, 0, 0, 0]]
SRC_MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]]
LABELS = [[12, 40, 7, 90, 1], [23, 4, 1, -100, -100]]

# name: (base folder relative to the repository, num_virtual_tokens, extra config, seed)
CASES = {
    # seed 0 gives this case the base model's greedy ids on both sources
    'prompt-t5-v1_0': ('test/fixtures/models/t5-v1_0', 3, {}, 1),
    'prompt-t5-v1_1': ('test/fixtures/models/t5-v1_1', 2, {}, 0),
    'prefix-t5-v1_0': ('test/fixtures/models/t5-v1_0', 3, {}, 0),
    'prefix-t5-v1_1': ('test/fixtures/peft/prefix-t5-v1_1/base', 2, {'prefix_projection': True, 'encoder_hidden_size': 10}, 0),
}


def rounded(t):
    return [float(f'{v:.8g}') for v in t.detach().reshape(-1).tolist()]


def v11_base(out):
    """A tiny T5 v1.1 (gated-GELU, untied head) with 3 + 3 layers and heads·d_kv = d_model."""
    torch.manual_seed(4321)
    cfg = T5Config(vocab_size=96, d_model=24, d_kv=8, num_heads=3, d_ff=40, num_layers=3, num_decoder_layers=3, relative_attention_num_buckets=8,
                   relative_attention_max_distance=20, dropout_rate=0.1, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   feed_forward_proj='gated-gelu', tie_word_embeddings=False)
    model = T5ForConditionalGeneration(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if 'relative_attention_bias' in n else 1.0 if 'layer_norm' not in n else 0.2) + (1.0 if 'layer_norm' in n else 0.0))
            if n.endswith('.weight') and p.dim() == 2 and 'relative_attention_bias' not in n and n != 'shared.weight':
                p.mul_(p.shape[1] ** -0.5)
    os.makedirs(out, exist_ok=True)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k not in ('encoder.embed_tokens.weight', 'decoder.embed_tokens.weight')}
    save_file(sd, os.path.join(out, 'model.safetensors'), metadata={'format': 'pt'})
    model.config.architectures = ['T5ForConditionalGeneration']
    model.config.save_pretrained(out)


def base(case):
    return T5ForConditionalGeneration.from_pretrained(os.path.join(HERE, '..', CASES[case][0]), attn_implementation='eager').float().eval()


def peft_config(case):
    _, n, extra, _ = CASES[case]
    if case.startswith('prompt-'):
        return PromptTuningConfig(task_type='SEQ_2_SEQ_LM', num_virtual_tokens=n, **extra)
    return PrefixTuningConfig(task_type='SEQ_2_SEQ_LM', num_virtual_tokens=n, **extra)


def forward(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor(SRC), attention_mask=torch.tensor(SRC_MASK), labels=torch.tensor(LABELS))


def make(case):
    out_dir = os.path.join(OUT, case)
    keep_base = case == 'prefix-t5-v1_1'
    shutil.rmtree(out_dir, ignore_errors=True)
    if keep_base:
        v11_base(os.path.join(out_dir, 'base'))
    torch.manual_seed(CASES[case][3])
    model = get_peft_model(base(case), peft_config(case))
    model.peft_config['default'].base_model_name_or_path = CASES[case][0]
    model.save_pretrained(out_dir)
    os.remove(os.path.join(out_dir, 'README.md'))
    model.eval()
    res = forward(model)
    gen = []
    plain = []
    plain_model = base(case)
    # t5-v1_1 has more decoder than encoder layers: transformers 5.18 sizes its cache by the encoder
    # and fails, so that prompt case generates without a cache (the same tokens by definition).
    kw = {'use_cache': False} if case == 'prompt-t5-v1_1' else {}
    with torch.no_grad():
        for i, row in enumerate(SRC):
            k = sum(SRC_MASK[i])
            ids = torch.tensor([row[:k]])
            g = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, num_beams=1, **kw)
            b = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, num_beams=3, **kw)
            gen.append({'source': row[:k], 'greedy': g[0].tolist(), 'beam3': b[0].tolist()})
            plain.append([plain_model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, num_beams=beams, **kw)[0].tolist() for beams in (1, 3)])
    for i, what in enumerate(('greedy', 'beam3')):
        if all(g[what] == p[i] for g, p in zip(gen, plain)):
            sys.exit(f'{case}: the adapted {what} ids equal the base model\'s on every source; pick another seed')
    exp = {
        'note': f'PEFT {model.peft_config["default"].peft_type.value} ({CASES[case][1]} virtual tokens) on {CASES[case][0]} (SEQ_2_SEQ_LM)',
        'versions': {'torch': torch.__version__, 'transformers': transformers.__version__, 'peft': peft.__version__},
        'inputIds': SRC,
        'attentionMask': SRC_MASK,
        'labels': LABELS,
        'logitsShape': list(res.logits.shape),
        'logits': rounded(res.logits),
        'loss': float(res.loss),
        'generate': gen,
    }
    with open(os.path.join(out_dir, 'expected.json'), 'w') as f:
        json.dump(exp, f)
    print('wrote', out_dir, gen)


def check(d, case):
    model = PeftModel.from_pretrained(base(case), d).eval()
    exp = json.load(open(os.path.join(OUT, case, 'expected.json')))
    err = (forward(model).logits.reshape(-1) - torch.tensor(exp['logits'])).abs().max().item()
    print(f'peft {peft.__version__} loaded {d} onto {CASES[case][0]}: max |logit diff| = {err:.3g}')
    sys.exit(0 if err < 1e-5 else 1)


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == '--check':
        check(sys.argv[2], sys.argv[3])
    else:
        for c in sys.argv[1:] or CASES:
            make(c)

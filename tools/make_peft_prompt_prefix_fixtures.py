"""Writes Hugging Face PEFT prompt- and prefix-tuning adapters for the tiny model fixtures, and checks ours.

  python tools/make_peft_prompt_prefix_fixtures.py
      test/fixtures/peft/<case>/ for each case below: adapter_config.json +
      adapter_model.safetensors written by peft's save_pretrained (PROMPT_TUNING or PREFIX_TUNING,
      random init; one prefix with PEFT's projection MLP, which PEFT saves as its output; for
      SEQ_CLS the classifier is perturbed so that the saved head matters), and expected.json:
      the inputs (ids, attention mask) and the float32 eval-mode logits of the adapted model
      (causal LM: [B, n + T, V], virtual positions included, as PEFT returns them).
  python tools/make_peft_prompt_prefix_fixtures.py --generate
      test/fixtures/peft/<case>/generate.json for the causal-LM cases: the ids that PEFT's
      generate() (greedy, 6 new tokens, no end-of-sequence stop) returns for each row of the
      case's inputs, from the saved adapter as PeftModel.from_pretrained loads it.
  python tools/make_peft_prompt_prefix_fixtures.py --check DIR CASE
      loads DIR (a folder saved by this library, with its expected.json) with peft's
      PeftModel.from_pretrained onto CASE's base model and prints the largest |logit difference|.

Needs torch, transformers, peft, safetensors.
"""
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import PeftModel, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, '..', 'test', 'fixtures', 'models')
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'peft')

# name: (base fixture, task, num_virtual_tokens, ids, attention mask)
CASES = {
    'prompt-llama': ('llama-gqa', 'CAUSAL_LM', 3, [[3, 17, 42, 8, 63, 1, 29], [5, 5, 12, 40, 33, 2, 7]], None),
    'prompt-gpt2': ('gpt2-lm', 'CAUSAL_LM', 4, [[3, 17, 42, 8, 63], [5, 5, 12, 40, 33]], None),
    'prompt-bert': ('bert-cls', 'SEQ_CLS', 2, [[2, 17, 42, 8, 3, 9], [2, 5, 12, 40, 0, 0]], [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
    'prefix-llama': ('llama-gqa', 'CAUSAL_LM', 3, [[3, 17, 42, 8, 63, 1, 29], [5, 5, 12, 40, 33, 2, 7]], None),
    'prefix-gpt2': ('gpt2-lm', 'CAUSAL_LM', 2, [[3, 17, 42, 8, 63], [5, 5, 12, 40, 33]], None),
    'prefix-bert': ('bert-cls', 'SEQ_CLS', 2, [[2, 17, 42, 8, 3, 9], [2, 5, 12, 40, 0, 0]], [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
}


def peft_config(case, task, n):
    if case.startswith('prompt-'):
        return PromptTuningConfig(task_type=task, num_virtual_tokens=n)
    proj = case == 'prefix-gpt2'
    return PrefixTuningConfig(task_type=task, num_virtual_tokens=n, prefix_projection=proj, encoder_hidden_size=12 if proj else None)


def base(case):
    name, task = CASES[case][0], CASES[case][1]
    cls = AutoModelForCausalLM if task == 'CAUSAL_LM' else AutoModelForSequenceClassification
    return cls.from_pretrained(os.path.join(MODELS, name), attn_implementation='eager').float().eval()


def logits(model, case):
    _, _, _, ids, mask = CASES[case]
    kw = {'input_ids': torch.tensor(ids)}
    if mask is not None:
        kw['attention_mask'] = torch.tensor(mask)
    with torch.no_grad():
        return model(**kw).logits


def make(case):
    name, task, n, ids, mask = CASES[case]
    torch.manual_seed(0)
    model = get_peft_model(base(case), peft_config(case, task, n))
    with torch.no_grad():
        for pn, p in model.named_parameters():
            if 'modules_to_save' in pn:
                p.add_(0.5 * torch.randn_like(p))
    model.peft_config['default'].base_model_name_or_path = f'test/fixtures/models/{name}'
    out_dir = os.path.join(OUT, case)
    shutil.rmtree(out_dir, ignore_errors=True)
    model.save_pretrained(out_dir)
    os.remove(os.path.join(out_dir, 'README.md'))
    model.eval()
    out = logits(model, case)
    exp = {
        'note': f'PEFT {model.peft_config["default"].peft_type.value} ({n} virtual tokens) on test/fixtures/models/{name} ({task})',
        'versions': {'torch': torch.__version__, 'transformers': transformers.__version__, 'peft': peft.__version__},
        'shape': [len(ids), len(ids[0])],
        'inputIds': [i for row in ids for i in row],
        'attentionMask': None if mask is None else [i for row in mask for i in row],
        'logitsShape': list(out.shape),
        'logits': [float(f'{v:.8g}') for v in out.reshape(-1).tolist()],
    }
    with open(os.path.join(out_dir, 'expected.json'), 'w') as f:
        json.dump(exp, f)
    print('wrote', out_dir)


def check(d, case):
    model = PeftModel.from_pretrained(base(case), d).eval()
    exp = json.load(open(os.path.join(d, 'expected.json')))
    kw = {'input_ids': torch.tensor(exp['inputIds']).reshape(exp['shape'])}
    if exp.get('attentionMask') is not None:
        kw['attention_mask'] = torch.tensor(exp['attentionMask']).reshape(exp['shape'])
    with torch.no_grad():
        out = model(**kw).logits
    err = (out.reshape(-1) - torch.tensor(exp['logits'])).abs().max().item()
    print(f'peft {peft.__version__} loaded {d} onto {CASES[case][0]}: max |logit diff| = {err:.3g}')
    sys.exit(0 if err < 1e-5 else 1)


def generate_ids(case):
    _, task, n, ids, _ = CASES[case]
    d = os.path.join(OUT, case)
    model = PeftModel.from_pretrained(base(case), d).eval()
    rows = []
    with torch.no_grad():
        for row in ids:
            g = model.generate(input_ids=torch.tensor([row]), attention_mask=torch.ones(1, len(row), dtype=torch.long), max_new_tokens=6, do_sample=False,
                               eos_token_id=None, pad_token_id=0)
            rows.append({'prompt': row, 'newTokens': g[0, len(row):].tolist()})
    with open(os.path.join(d, 'generate.json'), 'w') as f:
        json.dump({'note': f'PEFT generate() on {case}: greedy, 6 new tokens', 'versions': {'transformers': transformers.__version__, 'peft': peft.__version__}, 'rows': rows}, f)
    print('wrote', d, rows)


if __name__ == '__main__':
    if len(sys.argv) == 2 and sys.argv[1] == '--generate':
        for c in CASES:
            if CASES[c][1] == 'CAUSAL_LM':
                generate_ids(c)
    elif len(sys.argv) == 4 and sys.argv[1] == '--check':
        check(sys.argv[2], sys.argv[3])
    else:
        for c in CASES:
            make(c)

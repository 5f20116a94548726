"""Writes a Hugging Face PEFT IA3 adapter for the tiny LLaMA fixture, and checks ours.

  python tools/make_peft_ia3_fixture.py
      test/fixtures/peft/ia3-llama/: adapter_config.json + adapter_model.safetensors written by
      peft's save_pretrained (IA3 on k_proj, v_proj, down_proj; down_proj feed-forward), with
      random ia3_l values so that the adapter changes the outputs, and expected.json: the input
      ids and the float32 eval-mode logits of the adapted model.
  python tools/make_peft_ia3_fixture.py --check DIR [BASE]
      loads DIR (an adapter saved by this library) with peft's PeftModel.from_pretrained onto BASE
      (default the tiny LLaMA; any causal-LM fixture folder, e.g. test/fixtures/models/gpt2-lm) and
      prints the largest |logit difference| against DIR/expected.json ({inputIds, logits}, 2 rows).

Needs torch, transformers, peft, safetensors.
"""
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import IA3Config, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, '..', 'test', 'fixtures', 'models', 'llama-gqa')
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'peft', 'ia3-llama')
IDS = [[3, 17, 42, 8, 63, 1, 29], [5, 5, 12, 40, 33, 2, 7]]


def base():
    return LlamaForCausalLM.from_pretrained(BASE, attn_implementation='eager').float().eval()


def logits(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor(IDS)).logits


def make():
    torch.manual_seed(0)
    cfg = IA3Config(task_type='CAUSAL_LM', target_modules=['k_proj', 'v_proj', 'down_proj'], feedforward_modules=['down_proj'])
    model = get_peft_model(base(), cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'ia3_l' in n:
                p.copy_(1 + 0.5 * torch.randn_like(p))
    model.peft_config['default'].base_model_name_or_path = 'test/fixtures/models/llama-gqa'
    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT)
    os.remove(os.path.join(OUT, 'README.md'))
    model.eval()
    out = logits(model)
    exp = {
        'note': 'PEFT IA3 on test/fixtures/models/llama-gqa: k_proj, v_proj (output scaling), down_proj (input scaling)',
        'versions': {'torch': torch.__version__, 'transformers': transformers.__version__, 'peft': peft.__version__},
        'shape': [len(IDS), len(IDS[0])],
        'inputIds': [i for row in IDS for i in row],
        'logitsShape': list(out.shape),
        'logits': [float(f'{v:.8g}') for v in out.reshape(-1).tolist()],
    }
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(exp, f)
    print('wrote', OUT)


def check(d, base_dir=None):
    b = base() if base_dir is None else AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation='eager').float().eval()
    model = PeftModel.from_pretrained(b, d).eval()
    exp = json.load(open(os.path.join(d, 'expected.json')))
    with torch.no_grad():
        out = model(input_ids=torch.tensor(exp['inputIds']).reshape(2, -1)).logits
    err = (out.reshape(-1) - torch.tensor(exp['logits'])).abs().max().item()
    print(f'peft {peft.__version__} loaded {d}: max |logit diff| = {err:.3g}')
    sys.exit(0 if err < 1e-5 else 1)


if __name__ == '__main__':
    if len(sys.argv) in (3, 4) and sys.argv[1] == '--check':
        check(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
    else:
        make()

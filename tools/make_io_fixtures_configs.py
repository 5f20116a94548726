"""config.json fixtures and the values transformers reads from them. Never run in CI; rerun by hand:

    .venv/bin/python tools/make_io_fixtures_configs.py

test/fixtures/io/configs/v4/*.json are public Hub configs in the transformers v4 spelling
(rope_theta, torch_dtype …), written out by hand, plus two minimal ones that rely on defaults.
This script writes v5 configs with transformers' own save_pretrained into configs/v5/, loads every
config with AutoConfig, and records what transformers makes of it in configs/expected.json.
"""
import json
import os
import shutil
import sys

import transformers
from transformers import AutoConfig, BertConfig, DistilBertConfig, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config, RobertaConfig

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.path.join(HERE, "..", "test", "fixtures", "io", "configs")

V5 = {
    "bert": BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100, dtype="float32"),
    "roberta": RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5),
    "distilbert": DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=100, sinusoidal_pos_embds=True),
    "llama": LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64, vocab_size=100, rope_theta=500000.0, dtype="bfloat16", tie_word_embeddings=True),
    "mistral": MistralConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16, intermediate_size=64, vocab_size=100, sliding_window=64, dtype="float16"),
    "qwen2": Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64, vocab_size=100, tie_word_embeddings=True, rms_norm_eps=1e-6),
    "gpt2": GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, bos_token_id=99, eos_token_id=99),
}


def expected(c):
    mt = c.model_type
    gpt2, distil = mt == "gpt2", mt == "distilbert"
    decoder = mt in ("llama", "mistral", "qwen2")
    heads = c.num_attention_heads
    out = {
        "family": mt,
        "vocabSize": c.vocab_size,
        "hiddenSize": c.hidden_size,
        "numLayers": c.num_hidden_layers,
        "numHeads": heads,
        "numKvHeads": getattr(c, "num_key_value_heads", None) or heads,
        "headDim": getattr(c, "head_dim", None) or c.hidden_size // heads,
        "intermediateSize": (c.n_inner or 4 * c.n_embd) if gpt2 else (c.hidden_dim if distil else c.intermediate_size),
        "maxPositionEmbeddings": c.max_position_embeddings,
        "hiddenAct": c.activation_function if gpt2 else (c.activation if distil else c.hidden_act),
        "normEps": c.layer_norm_epsilon if gpt2 else (1e-12 if distil else (c.rms_norm_eps if decoder else c.layer_norm_eps)),
        "tieWordEmbeddings": c.tie_word_embeddings,
        "typeVocabSize": getattr(c, "type_vocab_size", 0) if mt in ("bert", "roberta") else 0,
        "dtype": str(c.dtype).replace("torch.", "") if c.dtype is not None else None,
    }
    if decoder:
        rp = c.rope_parameters
        out["ropeTheta"] = rp["rope_theta"]
        out["ropeType"] = rp.get("rope_type", "default")
    if mt == "mistral":
        out["slidingWindow"] = c.sliding_window
    return out


def main():
    v5dir = os.path.join(DIR, "v5")
    shutil.rmtree(v5dir, ignore_errors=True)
    os.makedirs(v5dir)
    for name, c in V5.items():
        d = os.path.join(v5dir, name)
        c.save_pretrained(d)
        shutil.move(os.path.join(d, "config.json"), os.path.join(v5dir, f"{name}.json"))
        os.rmdir(d)
    exp = {}
    for sub in ("v4", "v5"):
        for f in sorted(os.listdir(os.path.join(DIR, sub))):
            path = os.path.join(DIR, sub, f)
            with open(path) as fh:
                raw = json.load(fh)
            c = AutoConfig.for_model(**raw) if "model_type" in raw else None
            exp[f"{sub}/{f}"] = expected(c)
    # weight names of the base model and of the task model with a head, from tiny random models
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM
    names = {}
    torch.manual_seed(0)
    for fam, c in V5.items():
        head = AutoModelForCausalLM if fam in ("llama", "mistral", "qwen2", "gpt2") else AutoModelForMaskedLM
        base = AutoModel.from_config(c)
        task = head.from_config(c)
        names[fam] = {"base": list(base.state_dict().keys()), "task": list(task.state_dict().keys()), "taskClass": type(task).__name__}
    with open(os.path.join(DIR, "expected.json"), "w") as fh:
        json.dump({"source": f"python {sys.version.split()[0]}, transformers {transformers.__version__} (AutoConfig; state_dict names of AutoModel and of the LM-head model)", "configs": exp, "weightNames": names}, fh, indent=1)


main()

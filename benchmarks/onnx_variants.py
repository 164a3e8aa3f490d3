"""Faster ONNX models than the server's export? Graph fusion and int8 weights, against the agreement rule (issue 19).

The server embeds with an ONNX export of all-MiniLM-L6-v2 that it accepts only when every seed text's
embedding has cosine >= 0.99 with sentence-transformers'. This script derives variants of that export,
checks each against the same rule, and times it beside the export:

- fused: onnxruntime.transformers' BERT optimiser (attention, LayerNorm and GELU fusion);
- int8: dynamic quantisation of every MatMul weight (onnxruntime.quantization.quantize_dynamic), per tensor;
- int8 per channel: the same with one scale per output channel;
- int8 per channel, feed-forward output in float: the six feed-forward output projections (1536 -> 384), whose
  inputs after GELU span the widest range, kept in float32;
- int8 per channel, feed-forward in float: both feed-forward projections kept in float32.

For each: the least and mean cosine to sentence-transformers on the packaged seed bank and on GSM8K test
questions; how often the top 4 of 3,000 GSM8K train questions (embedded by the export) for each of 300 test
questions stay the same; a single prompt's embedding time (p50, the variants interleaved in blocks); the
batched rate over 400 prompts (best of batch sizes 16, 32, 64).

Run (the export is made or found in the model cache as the server does)::

    .venv/bin/python benchmarks/onnx_variants.py --data ../shared/datasets/gsm8k
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from harness import load_average, machine_info, percentile, record_section  # benchmarks/ is on the path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## ONNX model variants (issue 19, benchmarks/onnx_variants.py)"
MIN_AGREEMENT = 0.99
FFN_OUT, FFN_IN = (1536, 384), (384, 1536)  # MatMul weight shapes in MiniLM-L6's feed-forward blocks

Make = Callable[[Path, Path], None]


def fused(source: Path, target: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(str(source), model_type="bert", num_heads=12, hidden_size=384, opt_level=1)
    fusions = {name: count for name, count in model.get_fused_operator_statistics().items() if count}
    print(f"  fused operators: {fusions}", flush=True)
    model.save_model_to_file(str(target))


def int8(per_channel: bool, float_shapes: frozenset[tuple[int, ...]] = frozenset()) -> Make:
    def make(source: Path, target: Path) -> None:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = onnx.load(str(source)).graph
        shapes = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
        kept = [
            node.name
            for node in graph.node
            if node.op_type == "MatMul" and any(shapes.get(name) in float_shapes for name in node.input)
        ]
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel, nodes_to_exclude=kept
        )

    return make


VARIANTS: dict[str, Make | None] = {
    "export (float32, what the server runs)": None,
    "fused": fused,
    "int8": int8(False),
    "int8 per channel": int8(True),
    "int8 per channel, feed-forward output in float": int8(True, frozenset({FFN_OUT})),
    "int8 per channel, feed-forward in float": int8(True, frozenset({FFN_OUT, FFN_IN})),
}


def derive(export: Path, work: Path) -> dict[str, Path]:
    """A model folder per variant (the export's tokenizer and meta beside each derived model.onnx)."""
    folders: dict[str, Path] = {}
    for number, (name, make) in enumerate(VARIANTS.items()):
        if make is None:
            folders[name] = export
            continue
        folder = work / f"variant-{number}"
        folder.mkdir(parents=True, exist_ok=True)
        for kept in ("meta.json", "tokenizer.json"):
            shutil.copy(export / kept, folder / kept)
        print(f"deriving {name} ...", flush=True)
        try:
            make(export / "model.onnx", folder / "model.onnx")
        except Exception as exc:  # a variant the tools cannot make is reported, not fatal
            print(f"  {name}: failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        folders[name] = folder
    return folders


def the_export() -> Path:
    """The folder of the export the server loads (made now if the cache lacks it)."""
    from fewshot_service.api.app import configured_embedder
    from fewshot_service.embedding.backends import cache_key
    from fewshot_service.settings import Settings

    settings = Settings(embedding_backend="onnx")
    configured_embedder(settings)  # exports and checks when the cache lacks the export
    return settings.resolved_model_cache_dir() / cache_key(settings.model)


def interleaved_latency(embedders: dict[str, object], prompts: Sequence[str], rounds: int = 3) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in embedders}
    names = list(embedders)
    for number in range(rounds):
        for start in range(0, len(prompts), 25):
            for name in names if number % 2 == 0 else reversed(names):
                embed = embedders[name].embed  # type: ignore[attr-defined]
                for prompt in prompts[start : start + 25]:
                    began = time.perf_counter()
                    embed([prompt])
                    times[name].append((time.perf_counter() - began) * 1000)
    return {name: percentile(values, 50) for name, values in times.items()}


def batched_rate(embedder: object, texts: Sequence[str]) -> float:
    best = 0.0
    for size in (16, 32, 64):
        embedder.batch_size = size  # type: ignore[attr-defined]
        began = time.perf_counter()
        embedder.embed(list(texts))  # type: ignore[attr-defined]
        best = max(best, len(texts) / (time.perf_counter() - began))
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="GSM8K folder with train.jsonl and test.jsonl.")
    parser.add_argument("--no-record", action="store_true", help=f"Do not append to {RESULTS.name}.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from fewshot_service.embedding import SentenceTransformerEmbedder
    from fewshot_service.embedding.onnx_runtime import OnnxEmbedder
    from fewshot_service.serving.seeding import seed_inputs

    read = lambda name: [json.loads(line)["question"] for line in (args.data / name).open(encoding="utf-8")]  # noqa: E731
    train, test = read("train.jsonl")[:3000], read("test.jsonl")
    queries, timed = test[:300], test[300:500]
    seed = list(seed_inputs())
    reference = SentenceTransformerEmbedder()
    reference_seed, reference_queries = reference.embed(seed), reference.embed(queries)

    with tempfile.TemporaryDirectory(prefix="fewshot-onnx-variants-") as scratch:
        folders = derive(the_export(), Path(scratch))
        embedders = {name: OnnxEmbedder(folder) for name, folder in folders.items()}
        export_name = next(iter(VARIANTS))
        export = embedders[export_name]
        bank = export.embed(train)
        exact_top = np.argsort(-(export.embed(queries) @ bank.T), axis=1)[:, :4]
        rows = []
        for name, embedder in embedders.items():
            seed_cos = np.sum(embedder.embed(seed) * reference_seed, axis=1)
            query_vectors = embedder.embed(queries)
            query_cos = np.sum(query_vectors * reference_queries, axis=1)
            top = np.argsort(-(query_vectors @ bank.T), axis=1)[:, :4]
            same = float(np.mean([set(a) == set(b) for a, b in zip(top, exact_top, strict=True)]))
            rows.append([name, float(seed_cos.min()), float(seed_cos.mean()), float(query_cos.min()), same])
        latency = interleaved_latency(embedders, timed)
        rates = {name: batched_rate(embedder, test[:400]) for name, embedder in embedders.items()}

    lines = [
        "| variant | seed bank cosine min / mean | GSM8K cosine min | same top-4 as the export | accepted "
        "(min >= 0.99) | one prompt p50 ms | vs export | batched texts/s | vs export |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, seed_min, seed_mean, query_min, same in rows:
        lines.append(
            f"| {name} | {seed_min:.4f} / {seed_mean:.4f} | {query_min:.4f} | {same:.0%} | "
            f"{'yes' if seed_min >= MIN_AGREEMENT else 'no'} | {latency[name]:.2f} | "
            f"{latency[name] / latency[export_name]:.2f} x | {rates[name]:.0f} | "
            f"{rates[name] / rates[export_name]:.2f} x |"
        )
    text = "\n\n".join(
        [
            f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"Machine: {machine_info(('onnx', 'onnxruntime'))}; load average at the end {load_average()}",
            f"Command: `{' '.join(['python', *sys.argv])}`",
            "\n".join(lines),
        ]
    )
    print("\n" + text + "\n")
    if not args.no_record:
        record_section(text, SECTION, RESULTS)
        print(f"recorded in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

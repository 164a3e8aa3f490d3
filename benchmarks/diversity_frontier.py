"""Topic precision against redundancy for knn, MMR and stratified at several diversities, on the seed bank.

Each seed example is used as a query against the rest of the bank (the leakage guard drops the example
itself), k=4. Topic precision: share of picks in the query's topic. Intra-list similarity: mean pairwise
cosine among the picks (lower is more diverse). A quick look at the trade-off on our own bank; the evidence
behind the defaults is benchmarks/quality.py on public data sets.

    .venv/bin/python benchmarks/diversity_frontier.py [--seed-dir seed_examples]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from fewshot_service.api import build_service
from fewshot_service.models import SelectRequest
from fewshot_service.settings import Settings

# (strategy, diversity, topic preference; None: the service's default). knn without a topic preference is plain
# similarity search, the reference the default must be as on-topic as.
SETTINGS: list[tuple[str, float, float | None]] = [("knn", 0.0, 0.0), ("knn", 0.0, None)] + [
    (name, d, None) for name in ("mmr", "stratified") for d in (0.2, 0.4, 0.6, 0.8)
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-dir", type=Path, default=Path(__file__).resolve().parents[1] / "seed_examples")
    parser.add_argument("-k", type=int, default=4)
    args = parser.parse_args()
    rows = [json.loads(line) for path in sorted(args.seed_dir.glob("*.jsonl")) for line in path.open() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        service = build_service(Settings(data_dir=root / "data", index_dir=root / "indexes", seed_dir=args.seed_dir))
        service.start()
        print(f"{len(rows)} queries, k={args.k}\n")
        print("| strategy | diversity | topic preference | topic precision | intra-list similarity |")
        print("| --- | --- | --- | --- | --- |")
        for strategy, diversity, preference in SETTINGS:
            precision, redundancy = [], []
            for row in rows:
                request = SelectRequest(
                    prompt=row["input"], k=args.k, strategy=strategy, diversity=diversity, topic_preference=preference
                )
                picks = service.select(request).examples
                precision.append(np.mean([pick.topic == row["topic"] for pick in picks]))
                vectors = service.embedder.embed([pick.input for pick in picks])
                redundancy.append((vectors @ vectors.T)[np.triu_indices(len(picks), 1)].mean())
            shown = "default" if preference is None else preference
            print(f"| {strategy} | {diversity} | {shown} | {np.mean(precision):.3f} | {np.mean(redundancy):.3f} |")
        service.bank.close()


if __name__ == "__main__":
    main()

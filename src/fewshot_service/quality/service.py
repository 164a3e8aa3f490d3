"""The quality model against the bank: train it from curator labels, score examples, list the scores.

Training reads the bank revision first, then the labels and stored embeddings (so the revision recorded
with the model is never newer than what it saw), fits (quality_model.py), saves the model, and scores every
live embedded example: predicted_quality is written to the bank and, in a running server, to the served
index through the write path (serving/writes.py), like a curator's write.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from ..bank.stats_sql import EmbeddedExample
from ..models import Label
from ..serving.lifecycle import FewshotService
from .model import (
    SIMPLE_FEATURES,
    NoQualityModel,
    QualityModelInfo,
    QualityModelMismatch,
    QualityModelStore,
    TextFields,
    TrainedQualityModel,
    check_label_counts,
    feature_matrix,
    fit_quality_model,
    new_model_id,
    trained_at_now,
    training_target,
)

if TYPE_CHECKING:
    from ..curation.service import Curator

log = logging.getLogger(__name__)

# One training at a time per process: two would race on CURRENT and on the scores they write.
_TRAINING = threading.Lock()


class ScoreResult(BaseModel):
    model_id: str
    scored: int = Field(description="Live examples given a predicted_quality.")
    changed: int = Field(description="Of those, how many got a different value.")


class TrainResult(ScoreResult):
    model: QualityModelInfo


class ExampleScore(BaseModel):
    id: str
    predicted_quality: float | None = Field(description="P(good) from the quality model; null when unscored.")
    status: str
    source: str
    topic: str | None


class QualityService:
    def __init__(self, service: FewshotService, curator: Curator | None = None) -> None:
        """curator is given where a served index must reflect the scores (a server); without one (a command),
        scores go to the bank alone and running servers apply them from the bank's change feed."""
        self.service = service
        self.bank = service.bank
        self.curator = curator
        self.store = QualityModelStore(service.settings.data_dir / "quality_model")

    def train(self) -> TrainResult:
        """Fit on the current labels and score the bank; NotEnoughLabels when a class has too few."""
        self._check_ready()
        with _TRAINING:
            embedding_model = self.service.embedder.model_id
            revision = self.bank.revision()
            rows = list(self.bank.iter_embedded(embedding_model))
            targets = self._targets(self.bank.all_labels())
            chosen = [(row, targets[row.id]) for row in rows if targets.get(row.id) is not None]
            # Ids are random: ordering by content makes the CV folds, hence the metrics, the same for the same labels.
            chosen.sort(key=lambda pair: (pair[0].input, pair[0].output, pair[0].id))
            y = np.array([target for _, target in chosen], dtype=np.int64)
            minimum = self.service.settings.quality_min_labels_per_class
            check_label_counts(y, minimum)  # before any work: the usual answer on a young bank
            examples = [row for row, _ in chosen]
            pipeline, metrics = fit_quality_model(feature_matrix(examples, _stack(examples)), y, min_per_class=minimum)
            from sklearn import __version__ as sklearn_version

            at = trained_at_now()
            info = QualityModelInfo(
                model_id=new_model_id(revision, at),
                trained_at=at,
                bank_revision=revision,
                embedding_model=embedding_model,
                features=["embedding", *SIMPLE_FEATURES],
                min_labels_per_class=minimum,
                metrics=metrics,
                sklearn_version=sklearn_version,
            )
            model = TrainedQualityModel(info, pipeline)
            self.store.save(model)
            scored, changed = self._score_bank(model, rows)
        return TrainResult(model_id=info.model_id, scored=scored, changed=changed, model=info)

    def score(self) -> ScoreResult:
        """Score every live embedded example with the current model (e.g. after new examples arrived)."""
        self._check_ready()
        model = self.current()
        rows = list(self.bank.iter_embedded(model.info.embedding_model))
        scored, changed = self._score_bank(model, rows)
        return ScoreResult(model_id=model.info.model_id, scored=scored, changed=changed)

    def current(self) -> TrainedQualityModel:
        """The model in use; NoQualityModel before the first training, a mismatch after a model change."""
        model = self.store.load()
        embedder_id = self.service.embedder.model_id
        if model.info.embedding_model != embedder_id:
            raise QualityModelMismatch(
                f"the quality model {model.info.model_id} was trained on {model.info.embedding_model} embeddings "
                f"but the service embeds with {embedder_id}; train it again"
            )
        return model

    def predict(self, examples: Sequence[TextFields], embeddings: np.ndarray) -> np.ndarray:
        """P(good) for examples not (yet) in the bank, e.g. LLM-generated candidates; embeddings from the
        service's embedder."""
        return self.current().predict(examples, embeddings)

    def scorer(self) -> Callable[[Sequence[TextFields]], list[float] | None]:
        """A scorer for candidates before they are stored (LLM expansion's hook): P(good) in [0, 1] per
        example, embedded with the service's model; None while no usable model exists, so nothing is
        filtered rather than everything."""

        def score(examples: Sequence[TextFields]) -> list[float] | None:
            try:
                model = self.current()
            except (NoQualityModel, QualityModelMismatch) as exc:
                log.warning("candidates not scored: %s", exc.message)
                return None
            vectors = self.service.embedder.embed([e.input for e in examples]) if examples else np.zeros((0, 0))
            return [round(float(p), 4) for p in model.predict(examples, vectors)]

        return score

    def info(self) -> QualityModelInfo:
        return self.store.info()

    def scores(self, statuses: Sequence[str] | None, limit: int) -> list[ExampleScore]:
        return [ExampleScore(**row._asdict()) for row in self.bank.scored_examples(statuses, limit)]

    @staticmethod
    def _targets(labels: Sequence[Label]) -> dict[str, int | None]:
        by_example: dict[str, list[Label]] = defaultdict(list)
        for label in labels:
            by_example[label.example_id].append(label)
        return {example_id: training_target(own) for example_id, own in by_example.items()}

    def _score_bank(self, model: TrainedQualityModel, rows: list[EmbeddedExample]) -> tuple[int, int]:
        probabilities = model.predict(rows, _stack(rows))
        values: dict[str, float | None] = {
            row.id: round(float(p), 4) for row, p in zip(rows, probabilities, strict=True)
        }
        if self.curator is None:
            changed = self.bank.replace_predicted_quality(values)
        else:
            changed = self.service.writes.commit(lambda: self.bank.replace_predicted_quality(values), lambda ids: ids)
        return len(values), len(changed)

    def _check_ready(self) -> None:
        """A server refuses training and scoring while it starts (503), before anything is fitted or stored."""
        if self.curator is not None:
            self.service.served()


def _stack(rows: Sequence[EmbeddedExample]) -> np.ndarray:
    return np.stack([row.embedding for row in rows]) if rows else np.zeros((0, 0), dtype=np.float32)

"""Curation: add, edit, delete, label and review examples, with every change visible to the next select.

Every write goes through the service's one write path (serving/writes.py): refused while the service is
starting, before anything is stored; otherwise one bank transaction, then the served index brought in line
with what the bank committed, so a deleted or rejected example stops being selectable before the call returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ..bank import SqlBank
from ..bank.base import input_hash
from ..bank.protocol import ImportCounts
from ..bank.sql import ExactDuplicates
from ..errors import Conflict
from ..models import (
    ALL_STATUSES,
    Example,
    ExampleCreate,
    ExampleFields,
    ExampleImport,
    ExampleUsage,
    Label,
    LabelCreate,
    SelectFilters,
)
from ..selection.utility import public_utility
from ..serving.lifecycle import FewshotService
from ..serving.rebuild import embed_missing
from .labels import LabelPolicy, check_label, with_first_wrong_step
from .types import (
    CreateResult,
    Duplicate,
    EditOnDuplicate,
    ExampleQuery,
    ExampleRecord,
    ExampleUpdate,
    HistoryEntry,
    LabelResult,
    OnDuplicate,
    Preference,
    PreferenceCreate,
    PreferenceLabel,
    PreferenceLabelCreate,
    ReviewItem,
    ReviewProgress,
)


class DuplicateFound(Conflict):
    code = "duplicate"

    def __init__(self, duplicates: list[Duplicate], message: str | None = None) -> None:
        first = duplicates[0]
        super().__init__(
            message
            or f"{len(duplicates)} duplicate(s) found, e.g. example {first.position} duplicates {first.duplicate_of} "
            f"({first.kind}, similarity {first.similarity:.3f}); nothing was stored (on_duplicate=reject)",
            field="examples" if len(duplicates) > 1 or first.position else "input",
        )
        self.duplicates = duplicates

    def details(self) -> dict[str, Any]:
        return {"duplicates": [d.model_dump() for d in self.duplicates]}


def edit_duplicate(example_id: str, found: Duplicate) -> DuplicateFound:
    return DuplicateFound(
        [found],
        f"input: the edit would make example {example_id} a duplicate of {found.duplicate_of} ({found.kind}, "
        f"similarity {found.similarity:.3f}); nothing was changed (on_duplicate=keep keeps it anyway)",
    )


def answer_key_hidden(example: Example) -> Example:
    """The example as a blind reviewer sees it: no gold answer, no quality other annotators' scores made."""
    metadata = {name: value for name, value in example.metadata.items() if name != "gold"}
    return example.model_copy(update={"metadata": metadata, "quality": None})


class Curator:
    def __init__(self, service: FewshotService) -> None:
        self.service = service
        self.bank: SqlBank = service.bank
        self.writes = service.writes
        settings = service.settings
        self.policy = LabelPolicy(
            settings.label_approvals_needed, settings.label_min_mean_score, settings.label_rejections_needed
        )

    # -- adding ---------------------------------------------------------------------------------
    def add(self, records: Sequence[ExampleCreate], on_duplicate: OnDuplicate, actor: str) -> CreateResult:
        embedder = self.writes.embedder()  # 503 while starting
        vectors = embedder.embed([r.input for r in records])  # the slow part, outside any lock
        # Checked under the write lock, so a concurrent add in this process is in the index by then; the bank
        # re-checks exact duplicates inside its write transaction, which also serialises other replicas.
        with self.writes.lock:
            duplicates = self.find_duplicates(records, vectors)
            while True:
                if duplicates and on_duplicate == "reject":
                    raise DuplicateFound(duplicates)
                skipped = sorted({d.position for d in duplicates}) if on_duplicate == "skip" else []
                keep = [n for n in range(len(records)) if n not in set(skipped)]
                if not keep:
                    return CreateResult(examples=[], duplicates=duplicates, skipped=skipped)
                kept = [records[n] for n in keep]
                try:
                    created = self.bank.insert(
                        kept, vectors[keep], embedder.model_id, actor, unique=on_duplicate != "keep"
                    )
                except ExactDuplicates as clash:  # another replica stored the text since the check
                    duplicates += [
                        Duplicate(position=keep[n], duplicate_of=stored, similarity=1.0, kind="exact")
                        for n, stored in clash.clashes
                    ]
                    continue
                self.writes.sync([e.id for e in created])
                return CreateResult(examples=created, duplicates=duplicates, skipped=skipped)

    def find_duplicates(self, records: Sequence[ExampleFields], vectors: np.ndarray) -> list[Duplicate]:
        """Exact (normalised text) and semantic (cosine >= threshold) duplicates, against the bank and the batch."""
        threshold = self.service.settings.duplicate_threshold
        hashes = [input_hash(r.input) for r in records]
        stored = self.bank.find_exact(hashes)
        index = self.service.served().index
        everything = SelectFilters(statuses=list(ALL_STATUSES))
        found: list[Duplicate] = []
        first_with_hash: dict[str, int] = {}
        for n, digest in enumerate(hashes):
            if digest in stored:
                found.append(Duplicate(position=n, duplicate_of=stored[digest], similarity=1.0, kind="exact"))
            elif digest in first_with_hash:
                found.append(
                    Duplicate(position=n, duplicate_of=f"batch:{first_with_hash[digest]}", similarity=1.0, kind="exact")
                )
            else:
                first_with_hash[digest] = n
                hits = index.search(vectors[n], 1, everything)
                batch_sims = vectors[:n] @ vectors[n] if n else np.zeros(0, dtype=np.float32)
                best_batch = int(np.argmax(batch_sims)) if n else -1
                if len(hits.slots) and hits.scores[0] >= threshold:
                    found.append(
                        Duplicate(
                            position=n,
                            duplicate_of=index.ids(hits.slots[:1])[0],
                            similarity=round(float(hits.scores[0]), 4),
                            kind="semantic",
                        )
                    )
                elif n and batch_sims[best_batch] >= threshold:
                    found.append(
                        Duplicate(
                            position=n,
                            duplicate_of=f"batch:{best_batch}",
                            similarity=round(float(batch_sims[best_batch]), 4),
                            kind="semantic",
                        )
                    )
        return found

    # -- editing --------------------------------------------------------------------------------
    def update(
        self, example_id: str, edit: ExampleUpdate, if_match: int | None, actor: str,
        on_duplicate: EditOnDuplicate = "reject",
    ) -> Example:  # fmt: skip
        """Change fields at the expected version; a new input that duplicates another example (exact or
        semantic, as for a new one) is refused unless on_duplicate="keep"."""
        changes = edit.changes()
        if edit.version is not None and if_match is not None and edit.version != if_match:
            # One of the two is stale whatever the stored version is: refuse rather than pick one.
            raise Conflict(
                f"If-Match says version {if_match} but the body says version {edit.version}; send one", field="If-Match"
            )
        expected = edit.version if edit.version is not None else if_match
        embedder = self.writes.embedder()  # 503 while starting

        def write() -> Example:
            # Under the write lock, so no other edit here changes the input between this read and the commit:
            # the vector is always that of the text committed, and only a changed input is re-embedded.
            vector = None
            if "input" in changes and changes["input"] != self.bank.get(example_id).input:
                vector = embedder.embed([changes["input"]])[0]
                if on_duplicate == "reject":
                    self._refuse_edit_into_duplicate(example_id, changes["input"], vector)
            try:
                return self.bank.update(
                    example_id, changes, expected_version=expected, actor=actor, vector=vector,
                    model_id=embedder.model_id, unique=on_duplicate == "reject",
                )  # fmt: skip
            except ExactDuplicates as clash:
                twin = Duplicate(position=0, duplicate_of=clash.clashes[0][1], similarity=1.0, kind="exact")
                raise edit_duplicate(example_id, twin) from None

        return self.writes.commit(write, lambda _: [example_id])

    def _refuse_edit_into_duplicate(self, example_id: str, text: str, vector: np.ndarray) -> None:
        """The duplicate rule of adding, for an edited input: another example with the same normalised text,
        or the nearest other example (any status) at the semantic threshold. (The bank checks the exact rule
        again in its write transaction.)"""
        twin = self.bank.find_exact([input_hash(text)]).get(input_hash(text))
        if twin is not None and twin != example_id:
            raise edit_duplicate(example_id, Duplicate(position=0, duplicate_of=twin, similarity=1.0, kind="exact"))
        index = self.service.served().index
        hits = index.search(vector, 2, SelectFilters(statuses=list(ALL_STATUSES)))
        for other, score in zip(index.ids(hits.slots), hits.scores, strict=True):
            if other != example_id and score >= self.service.settings.duplicate_threshold:
                found = Duplicate(position=0, duplicate_of=other, similarity=round(float(score), 4), kind="semantic")
                raise edit_duplicate(example_id, found)

    def delete(self, example_id: str, actor: str) -> None:
        self.writes.commit(lambda: self.bank.delete(example_id, actor), lambda _: [example_id])

    def label(
        self, example_id: str, label: LabelCreate, actor: str, *, recorded_by: str | None = None,
        override_lease: bool = False, seen_version: int | None = None,
    ) -> LabelResult:  # fmt: skip
        """Store a label (label.annotator set); an item leased to someone else is refused unless override_lease,
        and a label given on seen_version of an example whose input, output or steps changed since is refused
        (409); other raters' labels moving its status or quality do not count."""
        label = with_first_wrong_step(label)
        stored, example = self.writes.commit(
            lambda: self.bank.add_label(
                example_id, label, check=check_label, policy=self.policy.decide, actor=actor,
                recorded_by=recorded_by, override_lease=override_lease, seen_version=seen_version,
            ),
            lambda _: [example_id],
        )  # fmt: skip
        self.bank.release_lease(example_id, stored.annotator)
        return LabelResult(label=stored, example=example)

    def withdraw_label(self, example_id: str, label_id: str, owner: str | None, actor: str) -> Example:
        """Take a label back (owner: only theirs; None for an admin); status and quality are recomputed."""
        return self.writes.commit(
            lambda: self.bank.withdraw_label(example_id, label_id, owner=owner, policy=self.policy.decide, actor=actor),
            lambda _: [example_id],
        )

    def import_records(self, records: Sequence[ExampleImport], actor: str) -> list[str]:
        """Restore exported records exactly (ids, labels, dates, status, quality); the ids stored."""
        return self.restore(records, actor).ids

    def restore(self, records: Sequence[ExampleImport], actor: str) -> ImportCounts:
        """Upsert exported records as they are (admins only), embed what needs it, and make them selectable."""
        embedder = self.writes.embedder()  # 503 while starting
        counts = self.bank.upsert(records, actor=actor)
        embed_missing(self.bank, embedder)  # the slow part, outside the write lock
        self.writes.refresh(counts.ids)
        return counts

    def import_curated(self, records: Sequence[ExampleImport], actor: str) -> ImportCounts:
        """Import lines under the rules of the API (see SqlBank.import_curated), duplicates included: a new
        line that duplicates a stored example or an earlier line (exact or semantic) is refused."""
        embedder = self.writes.embedder()  # 503 while starting
        fresh = self.bank.unmatched(records)
        vectors = embedder.embed([records[n].input for n in fresh]) if fresh else None  # outside the lock
        refused: dict[int, str] = {}
        embedded: dict[int, np.ndarray] = {}
        with self.writes.lock:
            if vectors is not None:
                for found in self.find_duplicates([records[n] for n in fresh], vectors):
                    of = found.duplicate_of
                    if of.startswith("batch:"):
                        of = "an earlier line of this upload"
                    refused[fresh[found.position]] = f"input: duplicate of {of} ({found.kind}, {found.similarity:.3f})"
                embedded = {n: vectors[i] for i, n in enumerate(fresh)}
            items = [(n, r, embedded.get(n)) for n, r in enumerate(records) if n not in refused]
            counts = self.bank.import_curated(items, embedder.model_id, actor)
            counts.failed = sorted(counts.failed + list(refused.items()))
        embed_missing(self.bank, embedder)  # inputs an update changed
        self.writes.refresh(counts.ids)
        return counts

    # -- review ---------------------------------------------------------------------------------
    def review_next(self, annotator: str, blind: bool, skip: Sequence[str] = ()) -> ReviewItem | None:
        flagged = self._lease_flagged(annotator, skip)
        leased = flagged or self.bank.lease_next(annotator, self.service.settings.review_lease_seconds, skip)
        if leased is None:
            return None
        example, reason, expires = leased
        detail = self._utility_reason(example) if flagged else None
        if blind:
            return ReviewItem(
                example=answer_key_hidden(example), reason=reason, labels=None, lease_expires_at=expires, detail=detail
            )
        labels = self.bank.labels_of(example.id)
        others = [lab for lab in labels if lab.annotator != annotator and lab.withdrawn_at is None]
        return ReviewItem(example=example, reason=reason, labels=others, lease_expires_at=expires, detail=detail)

    def _lease_flagged(self, annotator: str, skip: Sequence[str] = ()) -> tuple[Example, str, datetime] | None:
        """An example whose measured utility is confidently negative and that no one labelled since (issue 20)."""
        board = self.service.utilities
        passed = set(skip)
        flagged = [
            (i, board.version_of(i), u.since or datetime.min.replace(tzinfo=UTC))
            for i, u in board.flagged()
            if i not in passed
        ]
        leased = self.bank.lease_flagged(annotator, flagged, self.service.settings.review_lease_seconds)
        return None if leased is None else (leased[0], "negative_utility", leased[1])

    def _utility_reason(self, example: Example) -> str | None:
        utility = self.service.utilities.of(example.id, example.version)
        return utility.reason() if utility is not None else None

    def release(self, example_id: str, annotator: str | None) -> None:
        """Give up the review lease on an example (annotator: only theirs; None for an admin)."""
        self.bank.give_up_lease(example_id, annotator)

    # -- preferences ----------------------------------------------------------------------------
    def add_preference(self, pair: PreferenceCreate) -> Preference:
        return self.bank.add_preference(pair)

    def label_preference(self, preference_id: str, label: PreferenceLabelCreate) -> PreferenceLabel:
        return self.bank.add_preference_label(preference_id, label)

    def preference_jsonl(self) -> Iterator[str]:
        """{prompt, chosen, rejected} per annotator's latest label on a pair, when it prefers one response
        (ties and both_bad carry no pair; a changed mind replaces the earlier choice, never contradicts it)."""
        latest: dict[tuple[str, str], tuple[dict[str, Any], PreferenceLabel]] = {}
        for pair, label in self.bank.iter_preference_labels():  # oldest first
            latest.pop((label.preference_id, label.annotator), None)  # re-inserted: ordered by latest choice
            latest[(label.preference_id, label.annotator)] = (pair, label)
        for pair, label in latest.values():
            if label.choice in ("a", "b"):
                chosen, rejected = (pair["a"], pair["b"]) if label.choice == "a" else (pair["b"], pair["a"])
                record = {"prompt": pair["prompt"], "chosen": chosen, "rejected": rejected,
                          "annotator": label.annotator, "preference_id": label.preference_id}  # fmt: skip
                yield json.dumps(record, ensure_ascii=False) + "\n"

    # -- export ---------------------------------------------------------------------------------
    def export_jsonl(self, query: ExampleQuery, batch_size: int = 500) -> Iterator[str]:
        """Examples with their labels, one JSON object per line; `fewshot import` reads it back."""
        batch: list[Example] = []
        for example in self.bank.iter_examples(batch_size, query):
            batch.append(example)
            if len(batch) >= batch_size:
                yield from self._records(batch)
                batch = []
        yield from self._records(batch)

    def _records(self, batch: list[Example]) -> Iterator[str]:
        labels = self.bank.labels_for([e.id for e in batch])
        for example in batch:
            utility = public_utility(self.service.utilities.of(example.id, example.version))
            record = ExampleRecord(**{**example.__dict__, "utility": utility}, labels=labels[example.id])
            yield record.model_dump_json() + "\n"

    # -- reading, for the routes (they reach the bank only through the curator) -----------------
    def list_examples(self, query: ExampleQuery, after: str | None, limit: int) -> tuple[list[Example], str | None]:
        """A page of live examples matching the query, and the cursor of the next page (None at the end)."""
        return self.bank.list_examples(query, after, limit)

    def get(self, example_id: str) -> Example:
        return self.bank.get(example_id)

    def history(self, example_id: str) -> list[HistoryEntry]:
        """Every change to the example, oldest first."""
        return self.bank.history(example_id)

    def usage(self, example_id: str) -> ExampleUsage:
        self.bank.get(example_id)  # 404 for an unknown example, as every example route
        recent, kept = self.bank.times_served(example_id, datetime.now(UTC) - timedelta(days=1))
        return ExampleUsage(served_last_day=recent, served_kept=kept)

    def progress(self, annotator: str, since: datetime) -> ReviewProgress:
        return ReviewProgress(annotator=annotator, since=since, labelled=self.bank.labels_by(annotator, since))

    def labels_of(self, example_id: str) -> list[Label]:
        return self.bank.labels_of(example_id)

    # -- the workbench's queue moves (issue 18) ---------------------------------------------------
    def next_preference(self, annotator: str, skip: Sequence[str] = ()) -> Preference | None:
        return self.bank.next_preference(annotator, skip)

"""An expansion run: ask the LLM for new examples of some cells and store the good ones for review.

plan() turns a request into cells (topic, difficulty) and how many new examples each should get; run()
keeps up to `expand_concurrency` LLM calls in flight, each asking for a few examples of the cell that
lacks the most, shown seeds chosen for it. Every answer is read and filtered as it arrives (fields and
length bounds, exact and semantic duplicates against the bank and the answer, predicted quality when a
quality model is plugged in) and what survives is stored at once through the Curator as source=llm,
status=pending with its provenance, so the review queue sees it and an interrupted run keeps everything
stored so far. Calls continue until every cell has what it needs or the call budget is spent; a dropped
example only means another call is made for its cell.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..bank.coverage_sql import cell_counts
from ..curation.service import Curator
from ..curation.types import ExampleQuery
from ..errors import Conflict, FewshotError, InvalidInput, LLMError
from ..models import ExampleCreate
from ..settings import Settings
from .answers import Bounds, Candidate, MalformedAnswer, check_item, parse_answer
from .client import ChatClient, ChatReply, MalformedReply, Message, TokenUsage, endpoint
from .prompt import PromptTemplate, load_template
from .seeds import SeedPool, choose_seeds, gather_pool
from .types import CellReport, ExpandRequest, ExpansionReport, QualityScorer, TokenCounts

log = logging.getLogger(__name__)

BUDGET_FACTOR = 3  # default call budget: this many times the calls a run needs if nothing were dropped


@dataclass
class CellPlan:
    topic: str
    difficulty: int
    had: int
    requested: int
    stored: int = 0
    asked: int = 0  # examples asked for by calls still in flight
    pool: SeedPool | None = None  # read once per run

    @property
    def missing(self) -> int:
        return self.requested - self.stored

    @property
    def unasked(self) -> int:
        return self.requested - self.stored - self.asked


@dataclass
class ExpandPlan:
    cells: list[CellPlan]
    temperature: float
    max_calls: int

    @property
    def requested(self) -> int:
        return sum(cell.requested for cell in self.cells)


@dataclass(frozen=True)
class _Call:
    cell: CellPlan
    count: int
    seed_ids: list[str]
    messages: list[Message]


@dataclass
class _Tally:
    """What a run counts as it goes; becomes the report."""

    generated: int = 0
    calls: int = 0
    answered: int = 0  # calls that got a reply from the model, readable or not
    retries: int = 0
    failed_calls: int = 0
    stored_ids: list[str] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    tokens: TokenUsage = field(default_factory=TokenUsage)


class Expander:
    def __init__(
        self,
        curator: Curator,
        predict_quality: QualityScorer | None = None,
        client_factory: Callable[[Settings], ChatClient] = ChatClient.from_settings,
    ) -> None:
        """predict_quality: the quality model's scorer once one is trained (see QualityScorer)."""
        self.curator = curator
        self.service = curator.service
        self.settings = curator.service.settings
        self.predict_quality = predict_quality
        self._client_factory = client_factory
        self._template: PromptTemplate | None = None

    @property
    def template(self) -> PromptTemplate:
        if self._template is None:
            self._template = load_template(self.settings.expand_template)
        return self._template

    # -- planning -------------------------------------------------------------------------------
    def plan(self, request: ExpandRequest) -> ExpandPlan:
        """The cells to fill and how many each gets; fails fast on configuration and bad input."""
        settings = self.settings
        endpoint(settings)  # 503 now rather than after the seeds are read
        _ = self.template
        self.service.served()  # 503 while starting: duplicates are checked against the served index
        if not self.curator.bank.list_examples(ExampleQuery(status=["approved"]), None, 1)[0]:
            raise Conflict("the bank holds no approved example to show the model as a seed; approve some first")
        counts = cell_counts(self.curator.bank)
        if request.fill_gaps:
            cells = self._gaps(request, counts)
        else:
            for name in ("topic", "difficulty", "n"):
                if getattr(request, name) is None:
                    raise InvalidInput(f"{name} is required unless fill_gaps is set", field=name)
            assert request.topic is not None and request.difficulty is not None and request.n is not None
            had = counts.get((request.topic, request.difficulty), 0)
            cells = [CellPlan(request.topic, request.difficulty, had, request.n)]
        per_call = settings.expand_per_call
        needed_calls = sum(math.ceil(cell.requested / per_call) for cell in cells)
        budget = request.max_calls or BUDGET_FACTOR * needed_calls
        temperature = settings.expand_temperature if request.temperature is None else request.temperature
        return ExpandPlan(cells, temperature, min(budget, settings.expand_max_calls))

    def _gaps(self, request: ExpandRequest, counts: dict[tuple[str, int], int]) -> list[CellPlan]:
        target = request.target or self.settings.expand_cell_target
        cells = [
            CellPlan(topic, difficulty, had, target - had)
            for (topic, difficulty), had in sorted(counts.items())
            if had < target and request.topic in (None, topic) and request.difficulty in (None, difficulty)
        ]
        if request.n is not None and sum(c.requested for c in cells) > request.n:
            # Share the cap out one example at a time to the emptiest cell, so the gaps narrow evenly.
            gaps = [cell.requested for cell in cells]
            for cell in cells:
                cell.requested = 0
            for _ in range(request.n):
                emptiest = min(
                    (n for n in range(len(cells)) if cells[n].requested < gaps[n]),
                    key=lambda n: cells[n].had + cells[n].requested,
                )
                cells[emptiest].requested += 1
            cells = [cell for cell in cells if cell.requested]
        return cells

    # -- the run --------------------------------------------------------------------------------
    def run(self, plan: ExpandPlan, *, actor: str, on_stored: Callable[[int], None] | None = None) -> ExpansionReport:
        """Generate, filter and store until the plan is met, the budget is spent, the LLM fails or Ctrl-C.

        Returns the report in every case but one: an LLM that fails before answering a single call raises
        LLMError (502), since there is nothing partial to report and the endpoint is evidently unusable.
        """
        started = time.perf_counter()
        run_id = uuid.uuid4().hex
        tally = _Tally()
        rng = np.random.default_rng()
        failure: LLMError | None = None
        interrupted = False
        client = self._client_factory(self.settings)
        workers = ThreadPoolExecutor(self.settings.expand_concurrency, thread_name_prefix="fewshot-expand")
        in_flight: dict[Future[ChatReply], _Call] = {}
        try:
            while True:
                while failure is None and len(in_flight) < self.settings.expand_concurrency:
                    call = self._next_call(plan, rng) if tally.calls < plan.max_calls else None
                    if call is None:
                        break
                    in_flight[workers.submit(client.complete, call.messages, plan.temperature)] = call
                    tally.calls += 1
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    call = in_flight.pop(future)
                    call.cell.asked -= call.count
                    failure = self._settle(future, call, plan, tally, run_id, actor, on_stored) or failure
        except KeyboardInterrupt:
            interrupted = True
            log.warning(
                "expansion run %s interrupted; the %d example(s) stored so far stay", run_id, len(tally.stored_ids)
            )
        finally:
            client.cancel()
            workers.shutdown(wait=not interrupted, cancel_futures=True)
            if not interrupted:  # threads of an interrupted run may still be on the wire; let them time out
                client.close()
        if failure is not None and not tally.answered and not interrupted:
            raise failure
        return self._report(plan, tally, run_id, started, failure, interrupted)

    def _next_call(self, plan: ExpandPlan, rng: np.random.Generator) -> _Call | None:
        """A call for the cell with the most examples nobody has asked for yet, or None when all are asked for."""
        open_cells = [cell for cell in plan.cells if cell.unasked > 0]
        if not open_cells:
            return None
        cell = max(open_cells, key=lambda c: c.unasked)
        count = min(self.settings.expand_per_call, cell.unasked)
        if cell.pool is None:
            cell.pool = gather_pool(
                self.curator.bank,
                self.service.embedder.model_id,
                cell.topic,
                cell.difficulty,
                self.settings.expand_seeds,
            )
        seeds = choose_seeds(cell.pool, self.settings.expand_seeds, rng)
        cell.asked += count
        messages = self.template.messages(cell.topic, cell.difficulty, count, seeds)
        return _Call(cell, count, [seed.id for seed in seeds], messages)

    def _settle(
        self,
        future: Future[ChatReply],
        call: _Call,
        plan: ExpandPlan,
        tally: _Tally,
        run_id: str,
        actor: str,
        on_stored: Callable[[int], None] | None,
    ) -> LLMError | None:
        """Account for one finished call and store what it produced; the LLMError that should stop the run."""
        where = f"{call.cell.topic}/{call.cell.difficulty}"
        try:
            reply = future.result()
        except MalformedReply as exc:
            tally.answered += 1
            tally.tokens += exc.usage
            tally.dropped["malformed_answer"] += 1
            log.warning("expansion %s: answer skipped: %s", where, exc.message)
            return None
        except LLMError as exc:
            tally.failed_calls += 1
            tally.retries += exc.retries
            log.error("expansion %s: %s; no further calls will be made", where, exc.message)
            return exc
        tally.answered += 1
        tally.retries += reply.retries
        tally.tokens += reply.usage
        stored = self._store(call, reply, plan, tally, run_id, actor)
        if stored and on_stored is not None:
            on_stored(stored)
        return None

    # -- filtering and storing ------------------------------------------------------------------
    def _store(self, call: _Call, reply: ChatReply, plan: ExpandPlan, tally: _Tally, run_id: str, actor: str) -> int:
        where = f"{call.cell.topic}/{call.cell.difficulty}"
        try:
            items = parse_answer(reply.content)
        except MalformedAnswer as exc:
            tally.dropped["malformed_answer"] += 1
            truncated = " (cut off at max_tokens)" if reply.finish_reason == "length" else ""
            log.warning("expansion %s: answer skipped: %s%s", where, exc, truncated)
            return 0
        tally.generated += len(items)
        bounds = Bounds(
            self.settings.expand_min_input_chars,
            self.settings.expand_max_input_chars,
            self.settings.expand_max_output_chars,
        )
        records: list[ExampleCreate] = []
        for item in items:
            checked = check_item(item, bounds)
            record = self._record(checked, call, plan, run_id) if isinstance(checked, Candidate) else None
            if record is None:
                reason = checked if isinstance(checked, str) else "invalid_fields"
                tally.dropped[reason] += 1
                log.info("expansion %s: generated example dropped: %s", where, reason)
            else:
                records.append(record)
        records = self._without_duplicates(records, tally)
        records = self._good_enough(records, tally)
        if len(records) > call.cell.missing:
            tally.dropped["surplus"] += len(records) - call.cell.missing
            records = records[: call.cell.missing]
        if not records:
            return 0
        # add() checks duplicates again: another writer may have stored a copy since the check above.
        result = self.curator.add(records, on_duplicate="skip", actor=actor)
        for duplicate in result.duplicates:
            tally.dropped[f"duplicate_{duplicate.kind}"] += 1
        call.cell.stored += len(result.examples)
        tally.stored_ids += [example.id for example in result.examples]
        return len(result.examples)

    def _record(self, candidate: Candidate, call: _Call, plan: ExpandPlan, run_id: str) -> ExampleCreate | None:
        provenance: dict[str, Any] = {
            "model": self.settings.llm_model,
            "template_id": self.template.id,
            "template_version": self.template.version,
            "seed_ids": call.seed_ids,
            "temperature": plan.temperature,
            "run_id": run_id,
        }
        try:
            return ExampleCreate(
                input=candidate.input,
                output=candidate.output,
                steps=candidate.steps,
                topic=call.cell.topic,
                difficulty=call.cell.difficulty,
                source="llm",
                status="pending",
                metadata={"provenance": provenance},
            )
        except ValidationError:
            return None

    def _without_duplicates(self, records: list[ExampleCreate], tally: _Tally) -> list[ExampleCreate]:
        """Drop exact and semantic duplicates of the bank (which holds this run's earlier results) and of each other."""
        if not records:
            return records
        vectors = self.service.embedder.embed([record.input for record in records])
        duplicates = self.curator.find_duplicates(records, vectors)
        for duplicate in duplicates:
            tally.dropped[f"duplicate_{duplicate.kind}"] += 1
        positions = {duplicate.position for duplicate in duplicates}
        return [record for n, record in enumerate(records) if n not in positions]

    def _good_enough(self, records: list[ExampleCreate], tally: _Tally) -> list[ExampleCreate]:
        """Drop what the quality model scores too low; everything passes while no model is trained."""
        if not records or self.predict_quality is None:
            return records
        scores = self.predict_quality(records)
        if scores is None:
            return records
        if len(scores) != len(records):
            raise FewshotError(f"the quality model scored {len(scores)} of {len(records)} examples")
        threshold = self.settings.expand_min_predicted_quality
        kept = []
        for record, score in zip(records, scores, strict=True):
            if score < threshold:
                tally.dropped["low_quality"] += 1
                continue
            provenance = {**record.metadata["provenance"], "predicted_quality": round(float(score), 4)}
            kept.append(record.model_copy(update={"metadata": {**record.metadata, "provenance": provenance}}))
        return kept

    def _report(
        self,
        plan: ExpandPlan,
        tally: _Tally,
        run_id: str,
        started: float,
        failure: LLMError | None,
        interrupted: bool,
    ) -> ExpansionReport:
        if interrupted:
            stopped = "interrupted"
        elif failure is not None:
            stopped = "llm_error"
        elif all(cell.missing <= 0 for cell in plan.cells):
            stopped = "done"
        else:
            stopped = "max_calls"
        report = ExpansionReport(
            run_id=run_id,
            model=self.settings.llm_model or "",
            template_id=self.template.id,
            template_version=self.template.version,
            temperature=plan.temperature,
            requested=plan.requested,
            generated=tally.generated,
            stored=len(tally.stored_ids),
            stored_ids=tally.stored_ids,
            dropped=dict(sorted(tally.dropped.items())),
            calls=tally.calls,
            retries=tally.retries,
            failed_calls=tally.failed_calls,
            tokens=TokenCounts(
                prompt=tally.tokens.prompt_tokens,
                completion=tally.tokens.completion_tokens,
                total=tally.tokens.total_tokens,
            ),
            cells=[
                CellReport(topic=c.topic, difficulty=c.difficulty, had=c.had, requested=c.requested, stored=c.stored)
                for c in plan.cells
            ],
            stopped=stopped,
            error=failure.message if failure is not None else None,
            took_s=round(time.perf_counter() - started, 3),
        )
        log.info(
            "expansion run %s %s: stored %d of %d, generated %d, dropped %s, %d call(s), %d retries, %d tokens",
            run_id, stopped, report.stored, report.requested, report.generated, report.dropped or "nothing",
            report.calls, report.retries, report.tokens.total,
        )  # fmt: skip
        return report

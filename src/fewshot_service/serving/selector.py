"""The select pipeline, read straight through: embed the prompt ▶ one pool read (filters applied inside FAISS,
near copies of the prompt left out: the leakage guard) ▶ the neighbours' topic vote ▶ preferences ▶ the
strategy (pure) ▶ order ▶ the chosen examples (one cache or bank read) ▶ response."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..bank import SqlBank
from ..embedding import Embedder
from ..embedding.batching import MicroBatcher
from ..errors import InvalidInput
from ..index import Pool
from ..models import Example, Explanation, SelectedExample, SelectRequest, SelectResponse
from ..selection import (
    STRATEGIES,
    Candidates,
    Params,
    Pick,
    Preferences,
    Strategy,
    apply_preferences,
    arrange,
    neighbour_vote,
)
from ..selection.utility import UtilityBoard, adjust_scores, explain_move
from ..settings import Settings
from .example_cache import ExampleCache
from .rendering import as_messages, as_text, cost_text
from .writes import Served


class Selector:
    def __init__(
        self,
        settings: Settings,
        bank: SqlBank,
        examples: ExampleCache,
        served: Callable[[], Served],
        embedder: Callable[[], Embedder],
        utilities: UtilityBoard,
    ) -> None:
        """served raises NotReady until the service is ready; embedder is the model loaded at start; utilities,
        the examples' measured utility from reported outcomes (feedback/)."""
        self.settings = settings
        self.utilities = utilities
        self.bank = bank
        self.examples = examples
        self._served = served
        self._embedder = embedder
        # Prompts of concurrent requests share model calls; a prompt seen lately is not embedded again.
        self.prompt_batcher = MicroBatcher(
            lambda texts: self._embedder().embed(texts), settings.embed_batch_size, settings.embed_lanes
        )
        self._prompt_vector = functools.lru_cache(maxsize=settings.query_cache_size)(self._embed_prompt)

    def select(self, request: SelectRequest) -> SelectResponse:
        started = time.perf_counter()
        served = self._served()
        settings = self.settings
        strategy = self._strategy(request)
        diversity = settings.default_diversity if request.diversity is None else request.diversity
        topic_weight = (
            settings.default_topic_preference if request.topic_preference is None else request.topic_preference
        )
        count_tokens = self._token_counter(request.tokenizer) if request.max_tokens else None
        rng = np.random.default_rng(request.seed)
        utility_weight = settings.default_utility_weight if request.utility_weight is None else request.utility_weight
        utility_weight = utility_weight if self.utilities.active else 0.0

        query = self._prompt_vector(request.prompt)
        pool = served.index.pool(
            query,
            self._pool_size(strategy, request, topic_weight, utility_weight),
            request.filters,
            request.exclude_ids,
            below=settings.leakage_threshold,  # the leakage guard: a near copy of the prompt would leak its answer
            headroom=request.k,
            rng=rng if strategy.sampled_pool else None,
        )
        vote = neighbour_vote(pool.relevance, pool.topics, settings.preference_neighbours)
        score, preferences = apply_preferences(
            pool.relevance,
            pool.topics,
            pool.difficulties,
            topic_weight=topic_weight,
            difficulty_target=request.difficulty_target,
            match_difficulty=request.difficulty == "match",
            difficulty_weight=settings.difficulty_weight,
            neighbours=settings.preference_neighbours,
            vote=vote,
        )
        utility = self.utilities.for_pool(pool.ids, pool.revisions.tolist()) if utility_weight > 0 else None
        if utility is not None:
            score, utility = adjust_scores(score, utility, utility_weight)
        # The pool's texts are read only when the strategy reads them or a budget counts them.
        pool_examples = self._examples(pool.ids, pool.revisions) if strategy.needs_texts or count_tokens else None
        in_pool = _in_order(pool, pool_examples) if pool_examples is not None else []
        costs = None
        if count_tokens is not None:
            costs = np.array(count_tokens([cost_text(e) if e is not None else "" for e in in_pool]))
        candidates = Candidates(
            vectors=pool.vectors,
            relevance=pool.relevance,
            score=score,
            topics=pool.topics,
            difficulties=pool.difficulties,
            texts=[e.input if e is not None else "" for e in in_pool] if strategy.needs_texts else None,
            query_text=request.prompt,
            costs=costs,
            topic_vote=vote,
        )
        params = Params(
            request.k,
            diversity,
            request.max_tokens,
            rng,
            difficulty_steered=request.difficulty_target is not None or request.difficulty == "match",
            neighbours=settings.preference_neighbours,
        )
        picks = strategy.pick(candidates, params)
        if utility is not None:
            picks = [replace(p, reason=explain_move(p.reason, float(utility[p.position]))) for p in picks]
        picks = arrange(picks, request.order, {p.position: float(pool.difficulties[p.position]) for p in picks})
        if pool_examples is None:
            positions = np.array([p.position for p in picks], dtype=np.int64)
            pool_examples = self._examples([pool.ids[p.position] for p in picks], pool.revisions[positions])
        examples = [
            self._selected(pool_examples[pool.ids[pick.position]], pick, preferences, pool, costs)
            for pick in picks
            if pool.ids[pick.position] in pool_examples  # an example deleted since indexing is skipped, never invented
        ]
        return SelectResponse(
            examples=examples,
            strategy=strategy.name,
            diversity=diversity if strategy.uses_diversity else None,
            index_version=served.manifest.version,
            took_ms=round((time.perf_counter() - started) * 1000, 3),
            estimated_topic=preferences.topic,
            difficulty_target=preferences.difficulty_target,
            tokens=int(sum(costs[p.position] for p in picks)) if costs is not None else None,
            messages=as_messages(examples, request.include_steps) if request.format == "messages" else None,
            text=as_text(examples, request.template, request.include_steps) if request.format == "text" else None,
        )

    def _strategy(self, request: SelectRequest) -> Strategy:
        # Only an absent strategy means the default: "" is a mistake to name, not a request for it.
        name = request.strategy if request.strategy is not None else self.settings.default_strategy
        strategy = STRATEGIES.get(name)
        if strategy is None:
            raise InvalidInput(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}", field="strategy")
        return strategy

    def _pool_size(self, strategy: Strategy, request: SelectRequest, topic_weight: float, utility_weight: float) -> int:
        """How many candidates the strategy chooses among. Preferences and budgets re-rank: even knn then needs
        a pool to choose from, not just k."""
        factor = self.settings.candidate_factor
        size = strategy.candidates(request.k, factor)
        reranks = topic_weight > 0 or request.difficulty_target is not None or request.difficulty or request.max_tokens
        reranks = reranks or utility_weight > 0
        return max(size, request.k * factor) if reranks else size

    def _embed_prompt(self, prompt: str) -> np.ndarray:
        vector = self.prompt_batcher.embed_one(prompt)
        vector.flags.writeable = False  # shared by every request with this prompt while it stays cached
        return vector

    def _examples(self, ids: list[str], revisions: np.ndarray) -> dict[str, Example]:
        """These examples as the index knows them: from memory when cached at the indexed revision."""
        found, missing = self.examples.get(ids, revisions.tolist())
        if missing:
            fetched = self.bank.get_many_with_revisions(missing)
            self.examples.put(fetched.values())
            found.update((example_id, example) for example_id, (_, example) in fetched.items())
        return found

    def _token_counter(self, tokenizer: str) -> Callable[[list[str]], list[int]]:
        if tokenizer == "model":
            return lambda texts: self._embedder().count_tokens(texts)
        try:
            import tiktoken

            encoding = tiktoken.get_encoding("cl100k_base")
        except Exception as exc:  # not installed, or its BPE file is not on disk (nothing is downloaded)
            raise InvalidInput(
                f"tiktoken is not available offline here ({type(exc).__name__}); use tokenizer=model",
                field="tokenizer",
            ) from exc
        return lambda texts: [len(encoding.encode(text)) for text in texts]

    @staticmethod
    def _selected(
        example: Example, pick: Pick, preferences: Preferences, pool: Pool, costs: np.ndarray | None
    ) -> SelectedExample:
        topic, difficulty = pool.topics[pick.position], pool.difficulties[pick.position]
        why = Explanation(
            relevance=round(pick.relevance, 4),
            score=round(pick.score, 4),
            redundancy=round(pick.redundancy, 4),
            topic_match=None if preferences.topic is None or topic is None else topic == preferences.topic,
            difficulty_gap=None
            if preferences.difficulty_target is None or np.isnan(difficulty)
            else round(abs(difficulty - preferences.difficulty_target), 2),
            tokens=int(costs[pick.position]) if costs is not None else None,
            reason=pick.reason,
        )
        # Stored examples were validated on the way in; copying fields skips a second validation.
        return SelectedExample.model_construct(**example.__dict__, score=round(pick.relevance, 4), why=why)


def _in_order(pool: Pool, examples: dict[str, Example]) -> list[Example | None]:
    """The pool's examples position by position (None where one was deleted since it was indexed)."""
    return [examples.get(i) for i in pool.ids]

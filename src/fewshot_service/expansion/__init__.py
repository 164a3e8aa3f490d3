"""LLM-assisted expansion of the bank (synthetic prompting) through any OpenAI-compatible endpoint.

The quality model plugs in as `Expander(curator, predict_quality=scorer)`: a callable that takes the
candidate ExampleCreate records and returns each one's predicted probability of being good (0-1), or
None while no model is trained. The API takes it from `app.state.predict_quality` when that is set.
"""

from .client import ChatClient, ChatReply, TokenUsage
from .expander import Expander, ExpandPlan
from .prompt import PromptTemplate, load_template
from .types import ExpandRequest, ExpansionReport, QualityScorer

__all__ = [
    "ChatClient",
    "ChatReply",
    "ExpandPlan",
    "ExpandRequest",
    "Expander",
    "ExpansionReport",
    "PromptTemplate",
    "QualityScorer",
    "TokenUsage",
    "load_template",
]

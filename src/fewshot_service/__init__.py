"""fewshot-service: relevant and diverse few-shot examples for LLM prompts."""

__version__ = "0.1.0"

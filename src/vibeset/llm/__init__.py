"""LLM annotation: prompts (task), backends (model), and a run engine that loses nothing."""

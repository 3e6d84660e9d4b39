"""The LLM annotation settings: one object, read from the ``[llm]`` table of ``vibeset.toml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from .backend import Backend

BACKENDS = ("openai", "gemini")


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class LLMConfig(BaseModel):
    """Calls, limits, retries, inputs, output and cost of an LLM annotation run."""

    model_config = ConfigDict(extra="forbid")

    # calls
    base_url: str | None = Field(None, description="OpenAI-compatible / Gemini endpoint (default: the provider's)")
    concurrency: int = Field(16, ge=1)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    max_retries: int = Field(4, ge=0, description="retries per call after the first try")
    backoff_s: float = Field(1.0, ge=0, description="first backoff; doubles per retry, with jitter")
    backoff_max_s: float = Field(60.0, ge=0)
    timeout_s: float = Field(120.0, gt=0)
    temperature: float = Field(0.0, ge=0)
    max_output_tokens: int | None = Field(None, ge=1)
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    samples: int = Field(1, ge=1, description="self-consistency: answers per video; label = majority, score = vote share")
    logprobs: bool = Field(True, description="ask for token logprobs: the label token's probability is the score")
    top_logprobs: int = Field(0, ge=0, le=20, description="alternatives per token; 0: P(false) = 1 - P(true)")
    # batch mode
    mode: Literal["online", "batch"] = Field("online", description="batch: the provider's batch API, half price, <= 24 h")
    batch_size: int = Field(5000, ge=1, description="requests per provider batch")
    batch_max_bytes: int = Field(150_000_000, ge=1024, description="bytes per batch input file")
    batch_poll_s: float = Field(30.0, gt=0, description="first wait between polls; grows 1.5x per poll")
    batch_poll_max_s: float = Field(300.0, gt=0)
    batch_price_factor: float = Field(0.5, ge=0, description="batch price as a fraction of the online price")
    # inputs
    prompt: str = Field("annotate", description="bundled template name or path to NAME.system.j2")
    domain: str = Field("videos", min_length=1, description="what the catalog holds, named in the prompt (e.g. films)")
    shots: int = Field(0, ge=0, description="few-shot examples per video, chosen from golden dev")
    frames: int = Field(0, ge=0, description="frames sampled from a video's local media file (0: text only)")
    max_fps: float | None = Field(None, gt=0)
    frame_size: int = Field(512, ge=32)
    native_video: bool = Field(False, description="send the media file or URI itself (Gemini) instead of frames")
    # output
    flush_every: int = Field(64, ge=1, description="videos per appended Parquet part")
    cache: Path | None = Field(None, description="SQLite response cache (default: OUT/cache.sqlite)")
    # cost
    prices: dict[str, Price] = Field(default_factory=dict, description="model name -> USD per million tokens")
    chars_per_token: float = Field(4.0, gt=0)
    output_tokens_per_attribute: int = Field(40, ge=1)
    image_tokens: int = Field(258, ge=0)

    @classmethod
    def from_table(cls, table: dict[str, Any], source: str = "[llm]") -> "LLMConfig":
        try:
            return cls.model_validate(table)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"{source}: {where}: {first['msg']}") from err

    def price(self, model: str) -> Price | None:
        return self.prices.get(model)

    def backend(self, kind: str, model: str, base_url: str | None = None) -> Backend:
        """Build the backend ``kind`` for ``model``; model names pass through to the provider."""
        base_url = base_url or self.base_url
        if kind == "openai":
            from .openai_backend import OpenAIBackend

            return OpenAIBackend(
                model,
                base_url=base_url,
                response_format=self.response_format,
                temperature=self.temperature,
                max_output_tokens=self.max_output_tokens,
                timeout_s=self.timeout_s,
                logprobs=self.logprobs,
                top_logprobs=self.top_logprobs,
            )
        if kind == "gemini":
            from .gemini_backend import GeminiBackend

            return GeminiBackend(
                model,
                base_url=base_url,
                temperature=self.temperature,
                max_output_tokens=self.max_output_tokens,
                timeout_s=self.timeout_s,
            )
        raise ConfigError(f"unknown LLM backend {kind!r}; expected one of {', '.join(BACKENDS)}")

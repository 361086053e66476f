"""The monitor's config: ``tuneforge monitor serve configs/monitor-airline.yaml key=value``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tuneforge.config.base import StrictModel
from tuneforge.serve.config import AuthConfig, RateLimitConfig


class SentimentConfig(StrictModel):
    run: str = Field("sentiment", description="Which of `runs` classifies sentiment.")
    negative_label: str = Field("negative", description="The label that counts as negative in the statistics.")


class TopicConfig(StrictModel):
    """Where an item's topic comes from, first match wins: the item's own ``topic`` field, the topic run, the
    pattern, the default."""

    from_item: bool = Field(True, description="Use the item's own `topic` field when it has one.")
    run: str | None = Field(None, description="Which of `runs` classifies the topic (none: no topic classifier).")
    pattern: str | None = Field(None, description="A regular expression; its first group, lower-cased, is the "
                                                  "topic (e.g. the airline @-mention).")
    default: str = Field("other", min_length=1, description="The topic of items nothing else gave one.")


class WatchConfig(StrictModel):
    folder: Path | None = Field(None, description="Folder of JSONL files to ingest (one item per line); files "
                                                  "may grow, progress is kept in the database.")
    glob: str = Field("*.jsonl", description="Which files of the folder to read.")
    poll_s: float = Field(2.0, gt=0, description="Seconds between scans of the folder.")
    batch_lines: int = Field(200, ge=1, description="Lines stored per transaction (items and file progress "
                                                    "commit together).")


class WindowConfig(StrictModel):
    current_minutes: float = Field(60, gt=0, description="The current window: the last N minutes of stream time.")
    baseline_minutes: float = Field(360, gt=0, description="The baseline window, just before the current one.")
    bucket_minutes: float = Field(60, gt=0, description="Width of one point of the dashboard's trend chart.")


class ThresholdRule(StrictModel):
    """Alert when the negative share of the current window is above ``above``."""

    kind: Literal["threshold"]
    name: str = Field(min_length=1, description="Shown in alerts; unique.")
    by: Literal["topic", "source"] = Field("topic", description="Apply the rule to each topic or each source.")
    above: float = Field(gt=0, lt=1, description="Negative share (0-1) above which the rule fires.")
    min_volume: int = Field(20, ge=1, description="Items the current window must hold before the rule can fire.")


class SpikeRule(StrictModel):
    """Alert when the current window's negative share jumps against the baseline window's."""

    kind: Literal["spike"]
    name: str = Field(min_length=1, description="Shown in alerts; unique.")
    by: Literal["topic", "source"] = Field("topic", description="Apply the rule to each topic or each source.")
    min_difference: float | None = Field(None, gt=0, le=1, description="Fire when current share - baseline share "
                                                                       ">= this.")
    min_ratio: float | None = Field(None, gt=1, description="Fire when current share / baseline share >= this.")
    min_volume: int = Field(20, ge=1, description="Items the current window must hold.")
    min_baseline_volume: int = Field(5, ge=1, description="Items the baseline window must hold.")

    @model_validator(mode="after")
    def _one_test(self) -> SpikeRule:
        if self.min_difference is None and self.min_ratio is None:
            raise ValueError(f'spike rule "{self.name}": give min_difference (e.g. 0.3) and/or min_ratio (e.g. 2)')
        return self


Rule = Annotated[ThresholdRule | SpikeRule, Field(discriminator="kind")]


class WebhookConfig(StrictModel):
    urls: list[str] = Field(default_factory=list, description="Each new alert is POSTed as JSON to every URL.")
    timeout_s: float = Field(5.0, gt=0, description="Seconds per attempt.")
    retries: int = Field(2, ge=0, description="Attempts after the first failed one (backoff 0.5 s, 1 s, ...).")


class MonitorConfig(StrictModel):
    """``tuneforge monitor serve CONFIG``: ingest, classify, count, alert, dashboard."""

    runs: dict[str, str] = Field(default_factory=dict, description="name: run folder; the sentiment run and "
                                                                   "optionally a topic run.")
    sentiment: SentimentConfig = Field(default_factory=SentimentConfig, description="The sentiment run.")
    topic: TopicConfig = Field(default_factory=TopicConfig, description="Where an item's topic comes from.")
    database: str = Field("sqlite:///monitor/monitor.db", description="SQLAlchemy URL: sqlite:///FILE or "
                                                                      "postgresql+psycopg://USER@HOST/DB.")
    watch: WatchConfig = Field(default_factory=WatchConfig, description="The watched folder of JSONL files.")
    windows: WindowConfig = Field(default_factory=WindowConfig, description="Rolling windows (stream time).")
    rules: list[Rule] = Field(default_factory=list, description=(
        "Alert rules, each {kind: threshold, name, by: topic|source, above, min_volume} or {kind: spike, name, by, "
        "min_difference and/or min_ratio, min_volume, min_baseline_volume} (docs/MONITOR.md)."))
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig, description="Where new alerts are POSTed.")
    batch_size: int = Field(64, ge=1, description="Items per forward pass when classifying.")
    max_items_per_request: int = Field(1000, ge=1, description="Items one POST /v1/items may carry.")
    max_body_bytes: int = Field(4_194_304, ge=1024, description="Request body size; larger bodies get 413.")
    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(8010, ge=0, le=65535, description="TCP port.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="API keys, as for tuneforge serve.")
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig, description="Per-key rate limit.")

    @model_validator(mode="after")
    def _names(self) -> MonitorConfig:
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rule names must be unique; used twice: {', '.join(twice)}")
        return self

"""Reading /metrics the way Prometheus does, with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


def parse(text: str) -> dict[str, Metric]:
    """Metric families by name (counters without their `_total` suffix, as the parser names them)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Metric], sample_name: str, **labels: str) -> float | None:
    """The value of one sample (e.g. `taskforge_job_attempts_total`, queue="q"), or None."""
    family_name = sample_name.removesuffix("_total")
    for suffix in ("_bucket", "_count", "_sum"):
        if family_name not in families:
            family_name = family_name.removesuffix(suffix)
    for sample in families[family_name].samples if family_name in families else []:
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None

"""Which metric names, label names and label values a PromQL expression uses, and which the
bot exports (label values: the string literals of the bot's source).

A small lexical pass rather than a full parser: string literals, label matchers, range
and offset durations, grouping clauses and function calls are removed, and what is left
of the identifiers are metric names. Good enough for the expressions in this repository,
and tested on the tricky shapes in test_promql.py.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from openclaw_voice.ops.metrics import Metrics

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_SELECTOR = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_MATCHER_VALUE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_PLAIN_VALUE = re.compile(r"[\w.-]+")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<expr>.*),\s*\w+\s*\)\s*$", re.DOTALL)

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)

# Series Prometheus itself adds to every scrape target.
PROMETHEUS_SERIES = frozenset({"up"})
# Label-less families the bot exports only under a condition, so a test registry lacks them:
# the cgroup's memory limit exists only when MemoryMax= is set.
CONDITIONAL_SERIES = frozenset({"system_memory_limit_bytes"})
# Families from outside the bot's own registry the dashboard and alerts may use (the
# client library's process_*, HAProxy's exporter, the node exporter's filesystems).
ALLOWED_PREFIXES = ("process_", "haproxy_", "node_filesystem_")

# Sample names a family of each type exposes (the classic text format).
_SAMPLE_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}

# Labels Prometheus attaches from the scrape configuration (prometheus.yml).
TARGET_LABELS = frozenset({"job", "instance", "slot"})


def metric_names(expr: str) -> set[str]:
    """The metric (or recording rule) names an expression selects."""
    match = _LABEL_VALUES.match(expr)
    if match:  # Grafana's label_values(<selector>, <label>) template query
        expr = match["expr"]
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _VARIABLE.sub(" 1 ", text)
    names: set[str] = set()
    for found in _IDENTIFIER.finditer(text):
        name, call = found.group(1), found.group(2)
        if call or name in _KEYWORDS:
            continue
        names.add(name)
    return names


def selector_labels(expr: str) -> dict[str, set[str]]:
    """Label names used in each metric's matchers: ``{"up": {"job"}}`` for ``up{job="x"}``."""
    match = _LABEL_VALUES.match(expr)
    if match:
        expr = match["expr"]
    text = _STRING.sub('""', expr)
    labels: dict[str, set[str]] = {}
    for found in _SELECTOR.finditer(text):
        labels.setdefault(found.group(1), set()).update(_MATCHER_LABEL.findall(found.group(2)))
    return labels


def selector_values(expr: str) -> set[tuple[str, str, str]]:
    """(metric, label, value) for each value a matcher names: ``status="error"`` names
    ``error``, ``code=~"a|b"`` names ``a`` and ``b`` (only plain alternatives of a regex)."""
    found: set[tuple[str, str, str]] = set()
    for selector in _SELECTOR.finditer(expr):
        for label, op, value in _MATCHER_VALUE.findall(selector.group(2)):
            values = value.split("|") if op in ("=~", "!~") else [value]
            found.update(
                (selector.group(1), label, one) for one in values if _PLAIN_VALUE.fullmatch(one)
            )
    return found


def source_strings(package: Path) -> frozenset[str]:
    """Every string literal in the Python source under ``package`` (the label values the
    bot can emit are among them)."""
    strings: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
    return frozenset(strings)


@dataclass(frozen=True)
class ExportedMetrics:
    """Sample names the bot exposes on /metrics, with the label names of each."""

    labels: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_registry(cls) -> ExportedMetrics:
        labels: dict[str, set[str]] = {}
        # The ops server always feeds the loop lag; without a source the gauge is omitted.
        metrics = Metrics(loop_lag=lambda: 0.0)
        for family in metrics.registry.collect():
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
        # A labelled family with no child yet has no sample: take its exposed names from
        # its type and its label names from the wrapper (prometheus_client lists them
        # nowhere public).
        for wrapper in vars(metrics).values():
            if not isinstance(wrapper, MetricWrapperBase):
                continue
            declared = set(getattr(wrapper, "_labelnames", ()))
            for family in wrapper.describe():
                for suffix in _SAMPLE_SUFFIXES.get(family.type, ("",)):
                    extra = {"le"} if suffix == "_bucket" else set()
                    labels.setdefault(family.name + suffix, set()).update(declared | extra)
        return cls({name: frozenset(found) for name, found in labels.items()})

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.labels)


def unknown_metrics(
    exprs: Iterable[str], exported: ExportedMetrics, recorded: Iterable[str]
) -> dict[str, set[str]]:
    """For each expression, the names it uses that nothing exports or records."""
    known = exported.names | set(recorded) | PROMETHEUS_SERIES | CONDITIONAL_SERIES
    problems: dict[str, set[str]] = {}
    for expr in exprs:
        unknown = {
            name
            for name in metric_names(expr)
            if name not in known and not name.startswith(ALLOWED_PREFIXES)
        }
        if unknown:
            problems[expr] = unknown
    return problems


def unknown_labels(exprs: Iterable[str], exported: ExportedMetrics) -> dict[str, set[str]]:
    """For each expression, matcher labels a bot metric does not have (typos like ``{phse=}``)."""
    known = {**dict.fromkeys(CONDITIONAL_SERIES, frozenset[str]()), **exported.labels}
    problems: dict[str, set[str]] = {}
    for expr in exprs:
        for name, used in selector_labels(expr).items():
            if name not in known:
                continue  # recording rules, up, process_*/haproxy_*: labels not checked
            extra = used - known[name] - TARGET_LABELS - {"__name__"}
            if extra:
                problems.setdefault(expr, set()).update(f"{name}{{{label}}}" for label in extra)
    return problems


def unknown_label_values(
    exprs: Iterable[str], exported: ExportedMetrics, emitted: frozenset[str]
) -> dict[str, set[str]]:
    """For each expression, label values of bot metrics that the bot never emits (an alert
    on ``reason="requested"`` when the reasons are ``stop``, ``lost``, ...: never fires, or
    with ``!=``, always)."""
    problems: dict[str, set[str]] = {}
    for expr in exprs:
        for name, label, value in selector_values(expr):
            if name not in exported.labels or label in TARGET_LABELS | {"le", "__name__"}:
                continue
            if value not in emitted:
                problems.setdefault(expr, set()).add(f'{name}{{{label}="{value}"}}')
    return problems

"""Prometheus' text exposition format (version 0.0.4), written by hand.

The manager's figures are not counted in memory as a process runs (prefork
workers share nothing): every scrape reads them from the database, a handful
of aggregate queries (``models/saas_metrics.py``).  What is left is writing
them out, which is all this module does: metric families (gauges, counters,
histograms) with their ``# HELP`` and ``# TYPE`` lines, label values escaped
as the format says.  The official client library would bring its in-process
registry and a runtime dependency for these few lines; the tests parse what
is written here with that library's parser instead.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

import math
import re
from dataclasses import dataclass

#: The ``Content-Type`` of a response in this format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
#: Escapes in label values (backslash first, so that later escapes are not doubled).
LABEL_ESCAPES = (("\\", r"\\"), ('"', r"\""), ("\n", r"\n"))
#: Escapes in HELP text: a double quote is left as it is there.
HELP_ESCAPES = (("\\", r"\\"), ("\n", r"\n"))


@dataclass(frozen=True)
class Sample:
    """One line of a family: its full name (``_bucket``, ``_sum``... included)."""

    name: str
    labels: dict
    value: float


@dataclass(frozen=True)
class Family:
    """A metric's HELP and TYPE lines, then its samples (kept together, as required)."""

    name: str
    kind: str
    help: str
    samples: tuple


def gauge(name, help_text, values):
    """A gauge: ``values`` is an iterable of ``(labels, value)``."""
    return _simple(name, "gauge", help_text, values)


def counter(name, help_text, values):
    """A counter: ``values`` is an iterable of ``(labels, value)``; by convention its
    name ends with ``_total``."""
    return _simple(name, "counter", help_text, values)


def histogram(name, help_text, bounds, counts, total, *, labels=None):
    """A histogram of observations already counted per bucket.

    ``bounds`` are the buckets' upper bounds, increasing (``+Inf`` is added);
    ``counts[i]`` is the number of observations in bucket ``i`` only, that is
    above ``bounds[i - 1]`` and at most ``bounds[i]``, with one more entry for
    those above the last bound; ``total`` is the sum of the observations.  The
    ``_bucket`` samples are cumulative, as the format wants: each counts every
    observation at most its ``le``.
    """
    bounds = [float(bound) for bound in bounds]
    if any(math.isinf(b) or math.isnan(b) for b in bounds) or bounds != sorted(set(bounds)):
        raise ValueError("histogram %s: bounds must be finite, distinct and increasing" % name)
    if len(counts) != len(bounds) + 1:
        raise ValueError("histogram %s: %d bounds need %d counts"
                         % (name, len(bounds), len(bounds) + 1))
    labels = dict(labels or {})
    if "le" in labels:
        raise ValueError("histogram %s: 'le' is the bucket label" % name)
    samples, seen = [], 0
    for bound, count in zip([*bounds, math.inf], counts, strict=True):
        seen += count
        samples.append(Sample(name + "_bucket", {**labels, "le": _number(bound)}, seen))
    samples += [Sample(name + "_sum", labels, total), Sample(name + "_count", labels, seen)]
    return _family(name, "histogram", help_text, samples)


def render(families):
    """The exposition of ``families``, as the response body (ends with a newline)."""
    lines = []
    for family in families:
        lines.append("# HELP %s %s" % (family.name, _escape(family.help, HELP_ESCAPES)))
        lines.append("# TYPE %s %s" % (family.name, family.kind))
        lines.extend(_sample_line(sample) for sample in family.samples)
    return "\n".join(lines) + "\n"


def _simple(name, kind, help_text, values):
    return _family(name, kind, help_text,
                   [Sample(name, dict(labels), value) for labels, value in values])


def _family(name, kind, help_text, samples):
    if not METRIC_NAME.match(name):
        raise ValueError("invalid metric name %r" % name)
    for sample in samples:
        for label in sample.labels:
            if not LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError("metric %s: invalid label name %r" % (name, label))
    return Family(name, kind, help_text, tuple(samples))


def _sample_line(sample):
    if not sample.labels:
        return "%s %s" % (sample.name, _number(sample.value))
    labels = ",".join('%s="%s"' % (label, _escape(str(value), LABEL_ESCAPES))
                      for label, value in sample.labels.items())
    return "%s{%s} %s" % (sample.name, labels, _number(sample.value))


def _number(value):
    """A value as the format writes it: integers as such, ``+Inf``, ``-Inf``, ``NaN``."""
    if isinstance(value, bool | int):
        return str(int(value))
    value = float(value)  # also Decimal, as PostgreSQL's numeric comes back
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape(text, escapes):
    for char, escaped in escapes:
        text = text.replace(char, escaped)
    return text

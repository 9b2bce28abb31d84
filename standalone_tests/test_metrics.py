"""engine.metrics: the text format 0.0.4, read back by prometheus_client's own parser."""

import math
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine import metrics


def parsed(*families):
    """{family name: family} of the rendered ``families``, as Prometheus' client reads them."""
    return {family.name: family
            for family in text_string_to_metric_families(metrics.render(families))}


def values(family):
    """{(sample name, sorted labels): value} of a parsed family."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_gauge_help_type_and_values():
    text = metrics.render([metrics.gauge("saas_instances", "Instances by state.",
                                         [({"state": "active"}, 3), ({"state": "draft"}, 0)])])
    assert text == ("# HELP saas_instances Instances by state.\n"
                    "# TYPE saas_instances gauge\n"
                    'saas_instances{state="active"} 3\n'
                    'saas_instances{state="draft"} 0\n')
    family = parsed(metrics.gauge("g", "A gauge.", [({}, 1.5)]))["g"]
    assert (family.type, family.documentation) == ("gauge", "A gauge.")
    assert values(family) == {("g", ()): 1.5}


def test_label_values_are_escaped():
    nasty = 'back\\slash "quoted"\nnew line'
    text = metrics.render([metrics.gauge("g", "h", [({"instance": nasty}, 1)])])
    assert r'g{instance="back\\slash \"quoted\"\nnew line"} 1' in text
    assert text.count("\n") == 3  # the newline of the value did not end the line
    [sample] = parsed(metrics.gauge("g", "h", [({"instance": nasty}, 1)]))["g"].samples
    assert sample.labels == {"instance": nasty}


def test_help_text_is_escaped():
    family = metrics.gauge("g", 'Two\\lines\nand "quotes"', [({}, 1)])
    assert r'# HELP g Two\\lines\nand "quotes"' in metrics.render([family])
    assert parsed(family)["g"].documentation == 'Two\\lines\nand "quotes"'


def test_counter():
    family = parsed(metrics.counter("saas_things_total", "Things.", [({"kind": "a"}, 7)]))
    assert family["saas_things"].type == "counter"
    assert values(family["saas_things"]) == {("saas_things_total", (("kind", "a"),)): 7}


def test_histogram_buckets_are_cumulative():
    # Observations 0.4, 0.5 | 3 | (none up to 10) | 200, 300: per-bucket counts.
    family = metrics.histogram("saas_provisioning_seconds", "Provisioning time.",
                               [0.5, 1, 5, 10], [2, 0, 1, 0, 2], 504.9)
    text = metrics.render([family])
    assert 'saas_provisioning_seconds_bucket{le="0.5"} 2\n' in text
    assert 'saas_provisioning_seconds_bucket{le="1.0"} 2\n' in text
    assert 'saas_provisioning_seconds_bucket{le="+Inf"} 5\n' in text
    read = parsed(family)["saas_provisioning_seconds"]
    assert read.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in read.samples if s.name.endswith("_bucket")}
    assert buckets == {"0.5": 2, "1.0": 2, "5.0": 3, "10.0": 3, "+Inf": 5}
    totals = {s.name: s.value for s in read.samples if not s.name.endswith("_bucket")}
    assert totals == {"saas_provisioning_seconds_sum": 504.9,
                      "saas_provisioning_seconds_count": 5}


def test_histogram_keeps_its_labels_and_starts_empty():
    family = metrics.histogram("h", "H.", [1], [0, 0], 0, labels={"server": "eu"})
    assert values(parsed(family)["h"]) == {
        ("h_bucket", (("le", "1.0"), ("server", "eu"))): 0,
        ("h_bucket", (("le", "+Inf"), ("server", "eu"))): 0,
        ("h_sum", (("server", "eu"),)): 0, ("h_count", (("server", "eu"),)): 0}


@pytest.mark.parametrize(("bounds", "counts", "labels"), [
    ([1, 1], [0, 0, 0], None),          # not distinct
    ([2, 1], [0, 0, 0], None),          # not increasing
    ([1, math.inf], [0, 0, 0], None),   # +Inf is the writer's
    ([1, 2], [0, 0], None),             # one count per bucket, +Inf's included
    ([1], [0, 0], {"le": "x"}),         # le is the bucket label
])
def test_histogram_refuses_bad_buckets(bounds, counts, labels):
    with pytest.raises(ValueError, match="histogram h"):
        metrics.histogram("h", "H.", bounds, counts, 0, labels=labels)


def test_special_and_decimal_values():
    family = metrics.gauge("g", "h", [({"v": "inf"}, math.inf), ({"v": "nan"}, math.nan),
                                      ({"v": "dec"}, Decimal("12.50")), ({"v": "bool"}, True)])
    text = metrics.render([family])
    assert 'g{v="inf"} +Inf\n' in text
    assert 'g{v="nan"} NaN\n' in text
    assert 'g{v="dec"} 12.5\n' in text
    assert 'g{v="bool"} 1\n' in text
    read = {s.labels["v"]: s.value for s in parsed(family)["g"].samples}
    assert read["inf"] == math.inf
    assert math.isnan(read["nan"])
    assert read["dec"] == 12.5


def test_families_stay_apart_and_empty_families_are_valid():
    read = parsed(metrics.gauge("a", "A.", []), metrics.gauge("b", "B.", [({}, 2)]))
    assert read["a"].samples == []
    assert values(read["b"]) == {("b", ()): 2}


@pytest.mark.parametrize(("name", "labels"), [
    ("1bad", {}), ("bad-name", {}), ("ok", {"bad-label": "x"}), ("ok", {"__reserved": "x"}),
])
def test_invalid_names_are_refused(name, labels):
    with pytest.raises(ValueError, match="invalid"):
        metrics.gauge(name, "h", [(labels, 1)])

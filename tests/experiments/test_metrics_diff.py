"""experiments.metrics_diff: flattening and the before/after table."""

from experiments.metrics_diff import compare, flatten


def test_flatten_keeps_numeric_leaves_with_paths():
    tree = {"a": {"b": 1, "c": [2.5, {"d": True}]}, "s": "text", "n": None}
    assert flatten(tree) == {"a.b": 1.0, "a.c.0": 2.5, "a.c.1.d": 1.0}


def test_compare_counts_bitwise_equal_and_reports_the_largest_change():
    before = {"x": {"metrics": {"m": 1.0, "k": 2.0}}, "y": {"error": "boom"}}
    after = {"x": {"metrics": {"m": 1.0, "k": 2.2, "new": 0.0}}, "y": {"metrics": {"m": 1}}}
    table = compare(before, after).splitlines()
    assert table[2].startswith("| x | 2 | 1 | 9.09e-02 (k: 2 → 2.2); 1 metrics on one side only")
    assert table[3] == "| y | – | – | boom |"


def test_compare_leaves_timings_out():
    before = {"x": {"metrics": {"m": 1.0, "wall_s": 3.0, "a": {"train_seconds": 1.0}}}}
    after = {"x": {"metrics": {"m": 1.0, "wall_s": 9.0, "a": {"train_seconds": 5.0}}}}
    assert compare(before, after).splitlines()[2] == "| x | 1 | 1 | none |"

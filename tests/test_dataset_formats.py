"""Readers for the archives' text formats: UCR/UEA ``.ts`` and Monash ``.tsf``.

Every file is written here into ``tmp_path``: the suite must not depend on the data
folder next to the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqpipe import LSTMClassifier
from seqpipe.datasets import load_ts, load_tsf


def write(tmp_path: Path, text: str, name: str = "Toy_TRAIN.ts") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


UNIVARIATE = """\
# A comment: the archive's files open with a description.
#
@problemName Toy
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true 1 2 3
@data
0.5,1,1.5,2:1
-1,-2,-3,-4:3
1e-3,2E2,0,7:2
"""


def test_univariate_classification(tmp_path):
    bunch = load_ts(write(tmp_path, UNIVARIATE))
    assert bunch.data.shape == (3, 4, 1) and bunch.data.dtype == np.float64
    np.testing.assert_array_equal(bunch.data[2, :, 0], [1e-3, 200.0, 0.0, 7.0])
    # Labels stay strings, as declared: "1" is a class name, not a number.
    assert bunch.target.tolist() == ["1", "3", "2"]
    assert bunch.class_labels.tolist() == ["1", "2", "3"]
    assert bunch.task == "classification" and bunch.problem_name == "Toy"
    assert bunch.equal_length and bunch.lengths.tolist() == [4, 4, 4]
    assert not bunch.missing


def test_header_names_are_case_insensitive_and_bom_is_skipped(tmp_path):
    text = "\ufeff" + UNIVARIATE.replace("@problemName", "@problemname").replace(
        "@classLabel", "@CLASSLABEL"
    )
    bunch = load_ts(write(tmp_path, text))
    assert bunch.problem_name == "Toy" and bunch.data.shape == (3, 4, 1)


def test_multivariate(tmp_path):
    text = """\
@problemName Multi
@univariate false
@dimensions 2
@equalLength true
@classLabel true a b
@data
1,2,3:10,20,30:a
4,5,6:40,50,60:b
"""
    bunch = load_ts(write(tmp_path, text))
    assert bunch.data.shape == (2, 3, 2)
    np.testing.assert_array_equal(bunch.data[1], [[4, 40], [5, 50], [6, 60]])
    assert bunch.target.tolist() == ["a", "b"]


def test_dimension_count_inferred_without_header(tmp_path):
    text = "@classLabel true a\n@data\n1,2:3,4:5,6:a\n"
    assert load_ts(write(tmp_path, text)).data.shape == (1, 2, 3)


def test_ragged_is_nan_padded_at_the_end_and_fits(tmp_path):
    text = """\
@problemName Ragged
@univariate true
@equalLength false
@classLabel true x y
@data
1,2,3,4,5:x
5,4:y
1,2,3:x
3,2,1,0:y
"""
    bunch = load_ts(write(tmp_path, text))
    assert bunch.data.shape == (4, 5, 1)
    assert bunch.lengths.tolist() == [5, 2, 3, 4]
    assert not bunch.equal_length and not bunch.missing
    np.testing.assert_array_equal(bunch.data[1, :, 0], [5, 4, np.nan, np.nan, np.nan])
    # The padding is the estimators' convention: they take the array as it is.
    model = LSTMClassifier(hidden_size=4, epochs=2, random_state=0).fit(bunch.data, bunch.target)
    assert set(model.predict(bunch.data)) <= {"x", "y"}


def test_regression_targets(tmp_path):
    text = """\
@problemName Reg
@univariate true
@equalLength true
@targetLabel true
@data
1,2,3:22.5
3,2,1:-1e2
"""
    bunch = load_ts(write(tmp_path, text))
    assert bunch.task == "regression" and bunch.class_labels is None
    assert bunch.target.dtype == np.float64
    np.testing.assert_array_equal(bunch.target, [22.5, -100.0])


def test_unlabelled_file(tmp_path):
    text = "@univariate true\n@classLabel false\n@data\n1,2,3\n4,5,6\n"
    bunch = load_ts(write(tmp_path, text))
    assert bunch.task is None and bunch.target is None and bunch.data.shape == (2, 3, 1)


def test_missing_values_inside_are_nan_trailing_ones_are_padding(tmp_path):
    text = """\
@univariate true
@missing true
@equalLength false
@classLabel true a
@data
1,?,3,4:a
1,2,?,?:a
"""
    bunch = load_ts(write(tmp_path, text))
    assert np.isnan(bunch.data[0, 1, 0]) and bunch.missing
    # Trailing '?' are padding: the second series is two steps long.
    assert bunch.lengths.tolist() == [4, 2]
    with pytest.raises(ValueError, match="NaN inside sample 0"):
        LSTMClassifier(epochs=1).fit(bunch.data, bunch.target)


def test_trailing_missing_only_is_not_missing_inside(tmp_path):
    text = "@univariate true\n@classLabel true a\n@data\n1,2,3:a\n1,2,?:a\n"
    bunch = load_ts(write(tmp_path, text))
    assert not bunch.missing and bunch.lengths.tolist() == [3, 2]
    assert not bunch.equal_length


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("@univariate true\n@classLabel true a\n1,2:a\n", 3, "header line starting with '@'"),
        (
            "@dimensions 2\n@classLabel true a\n@data\n1,2:3,4:a\n1,2:a\n",
            5,
            r"expected 2 dimension\(s\) separated by ':', found 1",
        ),
        (
            "@univariate true\n@classLabel true a b\n@data\n1,2:a\n1,2:c\n",
            5,
            r"class label 'c' is not among the declared labels \['a', 'b'\]",
        ),
        (
            "@univariate true\n@classLabel true a\n@data\n1,x,3:a\n",
            4,
            "expected a number or '\\?' as value 2 of dimension 1, got 'x'",
        ),
        (
            "@univariate true\n@targetLabel true\n@data\n1,2:0.5\n1,2:big\n",
            5,
            "expected a numeric regression target, got 'big'",
        ),
        (
            "@univariate true\n@equalLength true\n@seriesLength 3\n@classLabel true a\n"
            "@data\n1,2,3:a\n1,2:a\n",
            7,
            r"expected 3 values per dimension \(@seriesLength\), found 2",
        ),
        (
            "@univariate true\n@equalLength true\n@classLabel true a\n@data\n1,2,3:a\n1,2:a\n",
            6,
            "'@equalLength true' but this series has 2 values",
        ),
        (
            "@dimensions 2\n@classLabel true a\n@data\n1,2,3:4,5:a\n",
            4,
            "dimensions of one sample to have the same length, got \\[3, 2\\]",
        ),
        (
            "@univariate maybe\n@data\n1,2\n",
            1,
            "expected '@univariate true' or '@univariate false'",
        ),
        ("@classLabel true\n@data\n1,2\n", 1, "expected the class labels"),
        ("@seriesLength -3\n@data\n1,2\n", 1, "positive integer"),
        ("@univariate true\n@classLabel true a\n@data\n?,?:a\n", 4, "all are '\\?'"),
    ],
)
def test_malformed_ts_names_file_line_and_expectation(tmp_path, body, line, message):
    path = write(tmp_path, body)
    with pytest.raises(ValueError, match=message) as info:
        load_ts(path)
    assert str(info.value).startswith(f"{path}, line {line}: ")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("@univariate true\n@classLabel true a\n", "expected an '@data' line"),
        ("@univariate true\n@classLabel true a\n@data\n", "expected at least one sample"),
        ("@timeStamps true\n@data\n(0,1)\n", "not supported"),
        ("@classLabel true a\n@targetLabel true\n@data\n1:a\n", "expected one"),
    ],
)
def test_malformed_ts_whole_file(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(ValueError, match=message) as info:
        load_ts(path)
    assert str(info.value).startswith(f"{path}: ")


TSF = """\
# Dataset Information
@relation Toy
@attribute series_name string
@attribute start_timestamp date
@attribute weight numeric
@frequency yearly
@horizon 2
@missing true
@equallength false

@data
T1:1972-01-01 00-00-00:0.5:3600,7700,12300
T2:1974-01-01 00-00-00:2:1,?,3,4
"""


def test_tsf_with_attributes_and_missing_values(tmp_path):
    bunch = load_tsf(write(tmp_path, TSF, "toy.tsf"))
    assert bunch.attributes == ["series_name", "start_timestamp", "weight"]
    assert bunch.series_name.tolist() == ["T1", "T2"]
    # Dates keep their archive spelling (hours-minutes-seconds with dashes).
    assert bunch.start_timestamp.tolist() == ["1972-01-01 00-00-00", "1974-01-01 00-00-00"]
    assert bunch.weight.dtype == np.float64 and bunch.weight.tolist() == [0.5, 2.0]
    assert len(bunch.series) == 2 and bunch.series[0].tolist() == [3600.0, 7700.0, 12300.0]
    assert len(bunch.series[1]) == 4 and np.isnan(bunch.series[1][1])
    assert bunch.frequency == "yearly" and bunch.horizon == 2 and bunch.relation == "Toy"
    assert bunch.contain_missing_values and not bunch.contain_equal_length


def test_tsf_flags_computed_when_not_declared(tmp_path):
    text = "@attribute series_name string\n@data\nA:1,2\nB:3,4\n"
    bunch = load_tsf(write(tmp_path, text, "toy.tsf"))
    assert bunch.contain_equal_length and not bunch.contain_missing_values
    assert bunch.horizon is None and bunch.frequency is None


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ("@attribute series_name string\n1:2\n", "line 2", "header line starting with '@'"),
        (
            "@attribute series_name string\n@attribute start date\n@data\nA:1,2\n",
            "line 4",
            r"expected 2 attribute value\(s\) then the series",
        ),
        (
            "@attribute w numeric\n@data\nheavy:1,2\n",
            "line 3",
            "expected a number for numeric attribute 'w', got 'heavy'",
        ),
        (
            "@attribute n string\n@data\nA:1,two\n",
            "line 3",
            "expected a number or '\\?' as value 2 of the series, got 'two'",
        ),
        ("@attribute n text\n@data\nA:1\n", "line 1", "type one of"),
        ("@attribute series string\n@data\nA:1\n", "line 1", "used twice or reserved"),
        ("@attribute n string\n@horizon soon\n@data\nA:1\n", "line 2", "positive integer"),
        ("@attribute n string\nA:1\n", "line 2", "header line"),
        ("@attribute n string\n", None, "expected an '@data' line"),
        ("@frequency yearly\n@data\nA:1\n", None, "expected at least one '@attribute'"),
        ("@attribute n string\n@data\n", None, "expected at least one series"),
    ],
)
def test_malformed_tsf(tmp_path, body, where, message):
    path = write(tmp_path, body, "bad.tsf")
    with pytest.raises(ValueError, match=message) as info:
        load_tsf(path)
    prefix = f"{path}, {where}: " if where else f"{path}: "
    assert str(info.value).startswith(prefix)

"""Distribution-table reading, validation and alignment: every contract violation is one clear error."""
import json

import numpy as np
import pandas as pd
import pytest

from spectra_eval.io import (
    DistributionTable,
    align_tables,
    atomic_outputs,
    read_distribution_table,
    write_distribution_table,
    write_json,
)
from spectra_eval.validation import SpectraInputError, check_distributions

CATS = ["Drama", "Comedy", "Sci-Fi"]


def _write(tmp_path, name, rows, columns=("user_id", *CATS)):
    path = tmp_path / name
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_round_trip_csv_and_parquet(tmp_path):
    table = DistributionTable(np.array(["007", "b"], dtype=object), tuple(CATS), np.array([[0.5, 0.5, 0], [0.2, 0.3, 0.5]]))
    for name in ("t.csv", "t.parquet"):
        write_distribution_table(tmp_path / name, table)
        back = read_distribution_table(tmp_path / name)
        assert list(back.users) == ["007", "b"]  # ids stay strings, leading zeros kept
        assert back.categories == tuple(CATS)
        np.testing.assert_array_equal(back.probs, table.probs)


@pytest.mark.parametrize(
    "rows, needle",
    [
        ([["u1", 0.5, 0.6, 0.0]], "user 'u1' (row 1): probabilities sum to 1.1"),
        ([["u1", 1.0, 0, 0], ["u2", np.nan, 0.5, 0.5]], "user 'u2' (row 2), column 'Drama'"),
        ([["u1", 1.2, -0.2, 0.0]], "column 'Comedy': value -0.2 is negative"),
        ([["u1", "lots", 0.5, 0.5]], "column 'Drama': value 'lots' is not a number"),
        ([["u1", 1, 0, 0], ["u1", 0, 1, 0]], "user 'u1' (row 2) appears more than once"),
        ([[None, 1, 0, 0]], "row 1, column 'user_id': empty user id"),
    ],
)
def test_contract_violations_name_file_user_and_column(tmp_path, rows, needle):
    path = _write(tmp_path, "bad.csv", rows)
    with pytest.raises(SpectraInputError) as err:
        read_distribution_table(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_empty_and_unknown_files(tmp_path):
    with pytest.raises(SpectraInputError, match="no such file"):
        read_distribution_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SpectraInputError, match="empty"):
        read_distribution_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("user_id,Drama\n")
    with pytest.raises(SpectraInputError, match="no rows"):
        read_distribution_table(tmp_path / "header.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(SpectraInputError, match="unknown table format"):
        read_distribution_table(tmp_path / "t.xlsx")
    (tmp_path / "nouser.csv").write_text("id,Drama\na,1\n")
    with pytest.raises(SpectraInputError, match="no 'user_id' column"):
        read_distribution_table(tmp_path / "nouser.csv")


def test_align_reorders_and_names_mismatches(tmp_path):
    truth = read_distribution_table(_write(tmp_path, "truth.csv", [["a", 1, 0, 0], ["b", 0, 1, 0]]))
    shuffled = read_distribution_table(
        _write(tmp_path, "pred.csv", [["b", 0.1, 0.2, 0.7], ["a", 0.3, 0.3, 0.4]], ("user_id", "Sci-Fi", "Comedy", "Drama"))
    )
    aligned = align_tables(truth, {"m": shuffled})["m"]
    np.testing.assert_allclose(aligned.probs, [[0.4, 0.3, 0.3], [0.7, 0.2, 0.1]])

    missing_user = read_distribution_table(_write(tmp_path, "p1.csv", [["a", 1, 0, 0]]))
    with pytest.raises(SpectraInputError, match=r"p1.csv: user 'b' of .*truth.csv is missing"):
        align_tables(truth, {"m": missing_user})
    extra_user = read_distribution_table(_write(tmp_path, "p2.csv", [["a", 1, 0, 0], ["b", 1, 0, 0], ["c", 1, 0, 0]]))
    with pytest.raises(SpectraInputError, match=r"p2.csv: user 'c' is not in"):
        align_tables(truth, {"m": extra_user})
    extra_cat = read_distribution_table(
        _write(tmp_path, "p3.csv", [["a", 1, 0, 0, 0], ["b", 1, 0, 0, 0]], ("user_id", *CATS, "War"))
    )
    with pytest.raises(SpectraInputError, match=r"p3.csv: column 'War' is not a category"):
        align_tables(truth, {"m": extra_cat})
    missing_cat = read_distribution_table(_write(tmp_path, "p4.csv", [["a", 1, 0], ["b", 1, 0]], ("user_id", "Drama", "Comedy")))
    with pytest.raises(SpectraInputError, match=r"p4.csv: column 'Sci-Fi' .* is missing"):
        align_tables(truth, {"m": missing_cat})


def test_check_distributions_tolerance_and_shape():
    assert check_distributions([0.5, 0.5 + 5e-7]).shape == (1, 2)
    with pytest.raises(SpectraInputError, match="sum to"):
        check_distributions([0.5, 0.5 + 5e-6])
    with pytest.raises(SpectraInputError, match="not numeric"):
        check_distributions(["a", "b"])
    with pytest.raises(SpectraInputError, match="no rows"):
        check_distributions(np.zeros((0, 3)))


def test_atomic_outputs_leave_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_outputs(out) as stage:
            write_json(stage / "metrics.json", {"a": 1})
            raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_outputs(out) as stage:
        write_json(stage / "metrics.json", {"a": np.float64(1.5), "b": float("nan"), "c": np.arange(2)})
    assert json.loads((out / "metrics.json").read_text()) == {"a": 1.5, "b": None, "c": [0, 1]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_text_like_missing_markers_are_real_user_ids(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text("user_id,Drama,Comedy\nNA,1,0\nnull,0,1\nNone,0.5,0.5\n")
    assert list(read_distribution_table(path).users) == ["NA", "null", "None"]
    path.write_text("user_id,Drama,Comedy\nu1,NA,1\n")
    with pytest.raises(SpectraInputError, match=r"user 'u1' \(row 1\), column 'Drama': value is nan"):
        read_distribution_table(path)


def test_duplicate_csv_header_is_an_error_not_a_rename(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("user_id,Drama,Drama,Comedy\nu1,0.5,0.25,0.25\n")
    with pytest.raises(SpectraInputError, match=r"dup.csv: column 'Drama' appears more than once"):
        read_distribution_table(path)


def test_unusable_output_directory_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        with pytest.raises(SpectraInputError, match="output directory"):
            with atomic_outputs(out):
                pass
    assert blocker.read_text() == "x"


def test_missing_or_extra_category_column_is_named_before_any_row_check(tmp_path):
    # the method table lacks 'Sci-Fi', so every row sums to less than 1; the column, not a row sum, is reported
    truth = read_distribution_table(_write(tmp_path, "truth.csv", [["a", 0.5, 0.3, 0.2], ["b", 0.1, 0.1, 0.8]]))
    short = _write(tmp_path, "short.csv", [["a", 0.5, 0.3], ["b", 0.1, 0.1]], ("user_id", "Drama", "Comedy"))
    with pytest.raises(SpectraInputError, match=r"short.csv: column 'Sci-Fi' \(a category of .*truth.csv\) is missing"):
        read_distribution_table(short, like=truth)
    extra = _write(tmp_path, "extra.csv", [["a", 0.5, 0.3, 0.1, 0.1], ["b", 0.1, 0.1, 0.4, 0.4]],
                   ("user_id", "Drama", "Comedy", "Sci-Fi", "War"))
    with pytest.raises(SpectraInputError, match=r"extra.csv: column 'War' is not a category of .*truth.csv"):
        read_distribution_table(extra, like=truth)


def test_shared_table_checks_name_file_row_and_column():
    from spectra_eval.io import check_unique, check_user_ids, require_columns, text_ids

    frame = pd.DataFrame({"user_id": ["a", " ", "c"], "item_id": ["x", "y", "x"]})
    require_columns(frame, ("user_id", "item_id"), "t.csv")
    with pytest.raises(SpectraInputError, match=r"^t.csv: no 'rank' column \(columns: user_id, item_id\)$"):
        require_columns(frame, ("user_id", "rank", "score"), "t.csv")
    with pytest.raises(SpectraInputError, match=r"^t.csv: row 2, column 'user_id': empty user id$"):
        text_ids(frame, "user_id", "t.csv")
    with pytest.raises(SpectraInputError, match=r"^t.csv: row 2, column 'user_id': empty user id$"):
        check_user_ids(frame, "t.csv")
    with pytest.raises(SpectraInputError, match=r"^t.csv: row 2, column 'user_id': empty value$"):
        text_ids(frame, "user_id", "t.csv", "value")
    assert text_ids(frame, "item_id", "t.csv").tolist() == ["x", "y", "x"]
    with pytest.raises(SpectraInputError, match=r"^t.csv: item 'x' \(row 3\) appears more than once$"):
        check_unique(frame["item_id"], "t.csv", "item")
    check_unique(["x", "y"], "t.csv", "item")

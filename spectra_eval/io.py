"""Distribution tables (CSV or Parquet) and atomic output.

A distribution table has a ``user_id`` column (read as a string) and one column per category label; each
row is a probability vector. :func:`read_distribution_table` checks the whole contract through
:func:`spectra_eval.validation.check_distributions`; :func:`align_tables` puts method tables in the truth's
user and category order. Writers go through a temporary file and ``os.replace`` so a reader never sees
half a file, and :func:`atomic_outputs` stages every file of a command before any reaches ``--out``.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from spectra_eval.validation import SpectraInputError, check_counts, check_distributions

USER_COL = "user_id"


@dataclass(frozen=True)
class DistributionTable:
    """Per-user probability vectors over named categories."""

    users: np.ndarray  # (n,) object array of str
    categories: tuple[str, ...]
    probs: np.ndarray  # (n, K) float64, rows sum to 1
    source: str = "<memory>"

    @property
    def n_users(self) -> int:
        return len(self.users)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.probs, columns=list(self.categories))
        frame.insert(0, USER_COL, self.users)
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "<memory>", *,
                   like: "DistributionTable | CountTable | None" = None) -> "DistributionTable":
        """Check ``frame`` against the data contract and wrap it.

        With ``like`` (e.g. the truth table), the category columns must be exactly ``like``'s (any order);
        a missing or extra column is reported before any row is checked.
        """
        users, categories, values = category_columns(frame, source, like)
        probs = check_distributions(values, source=source, users=users, categories=categories)
        return cls(users=users, categories=categories, probs=probs, source=source)


@dataclass(frozen=True)
class CountTable:
    """Per-user counts of observed items per category (``spectra certify --counts``): n_u >= 1 items each."""

    users: np.ndarray
    categories: tuple[str, ...]
    counts: np.ndarray  # (n, K) int64
    source: str = "<memory>"

    @property
    def n_obs(self) -> np.ndarray:
        return self.counts.sum(axis=1)

    def to_distribution(self) -> DistributionTable:
        """The observed mix counts / n_u of every user."""
        return DistributionTable(self.users, self.categories, self.counts / self.n_obs[:, None], self.source)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "<memory>", *,
                   like: "DistributionTable | CountTable | None" = None) -> "CountTable":
        """Check a counts table (user_id + one non-negative integer column per category, row sums >= 1)."""
        users, categories, values = category_columns(frame, source, like)
        counts = check_counts(values, source=source, users=users, categories=categories)
        return cls(users=users, categories=categories, counts=counts, source=source)


def category_columns(frame: pd.DataFrame, source: str, like: "DistributionTable | CountTable | None" = None
                     ) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """User ids, category labels and the float values of a per-user table, with one-line errors naming the
    file, user and column (ids present and unique, categories present and unique (exactly ``like``'s when
    given), every cell a number)."""
    users = check_user_ids(frame, source)
    if len(frame) == 0:
        raise SpectraInputError(f"{source}: the table has no rows")
    categories = [c for c in frame.columns if c != USER_COL]
    if not categories:
        raise SpectraInputError(f"{source}: no category columns besides {USER_COL!r}")
    dup_cols = pd.Index(categories)[pd.Index(categories).duplicated()]
    if len(dup_cols):
        raise SpectraInputError(f"{source}: column {dup_cols[0]!r} appears more than once")
    if like is not None:
        check_same_categories(categories, like.categories, source, like.source)
    values = frame[categories]
    for col in categories:  # name the first cell that is not a number
        if not pd.api.types.is_numeric_dtype(values[col]):
            coerced = pd.to_numeric(values[col], errors="coerce")
            bad = coerced.isna() & values[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise SpectraInputError(
                    f"{source}: user {users[row]!r} (row {row + 1}), column {col!r}: "
                    f"value {values[col].iloc[row]!r} is not a number"
                )
    array = values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    return users, tuple(str(c) for c in categories), array


def require_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a one-line error when it is not an existing file."""
    path = Path(path)
    if not path.is_file():
        raise SpectraInputError(f"{path}: no such file")
    return path


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: str) -> None:
    """Name the first of ``columns`` that ``frame`` lacks (with the first 8 columns it has)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SpectraInputError(f"{source}: no {missing[0]!r} column (columns: {', '.join(map(str, frame.columns[:8]))})")


def first_empty(values: pd.Series) -> int | None:
    """Position of the first missing or blank (whitespace only) cell of ``values``, or None."""
    empty = values.isna() | (values.astype(str).str.strip() == "")
    return int(np.flatnonzero(empty.to_numpy())[0]) if empty.any() else None


def text_ids(frame: pd.DataFrame, column: str, source: str, what: str | None = None) -> pd.Series:
    """``frame[column]`` as str, every cell non-empty; an empty one is ``FILE: row N, column 'C': empty WHAT``
    (``what`` defaults to the column name with spaces: ``item_id`` -> ``item id``)."""
    values = frame[column]
    row = first_empty(values)
    if row is not None:
        raise SpectraInputError(f"{source}: row {row + 1}, column {column!r}: "
                                f"empty {column.replace('_', ' ') if what is None else what}")
    return values.astype(str)


def check_unique(ids: Any, source: str, what: str) -> None:
    """Name the first repeated id: ``FILE: WHAT 'ID' (row N) appears more than once``."""
    ids = np.asarray(ids, dtype=object)
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise SpectraInputError(f"{source}: {what} {ids[row]!r} (row {row + 1}) appears more than once")


def check_user_ids(frame: pd.DataFrame, source: str) -> np.ndarray:
    """The ``user_id`` column as an object array of str: present, non-empty and unique (errors name the row)."""
    require_columns(frame, (USER_COL,), source)
    users = text_ids(frame, USER_COL, source).to_numpy(dtype=object)
    check_unique(users, source, "user")
    return users


#: Cell texts read as missing in non-text columns (text columns such as ``user_id`` keep them verbatim,
#: so a user called "NA" stays a user).
NA_TEXTS = ("", "NA", "N/A", "n/a", "NaN", "nan", "-nan", "null", "NULL", "None", "#N/A", "<NA>")


def read_frame(path: str | os.PathLike, *, string_columns: tuple[str, ...] = (USER_COL,)) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by extension) with clear errors for missing/empty/unknown files."""
    path = Path(path)
    if not path.exists():
        raise SpectraInputError(f"{path}: no such file")
    if path.is_dir():
        raise SpectraInputError(f"{path}: is a directory, expected a .csv or .parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            if path.stat().st_size == 0:
                raise SpectraInputError(f"{path}: the file is empty")
            with path.open(newline="", encoding="utf-8", errors="replace") as handle:
                header = next(csv.reader(handle), [])
            seen = set()
            for name in header:
                if name in seen:  # pandas would silently rename the second one to 'name.1'
                    raise SpectraInputError(f"{path}: column {name!r} appears more than once")
                seen.add(name)
            frame = pd.read_csv(
                path,
                dtype={c: str for c in string_columns},
                keep_default_na=False,
                na_values={c: list(NA_TEXTS) for c in header if c not in string_columns},
            )
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            for c in string_columns:
                if c in frame.columns:
                    frame[c] = frame[c].astype("string").astype(object).where(frame[c].notna(), None)
        else:
            raise SpectraInputError(f"{path}: unknown table format {suffix!r} (use .csv or .parquet)")
    except SpectraInputError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpectraInputError(f"{path}: cannot be read as {suffix[1:]} ({first})") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def check_same_categories(columns: Iterable[str], expected: Iterable[str], source: str,
                          expected_source: str) -> None:
    """``columns`` must hold exactly the ``expected`` labels: name the first missing, then the first extra one."""
    have = pd.Index(columns)
    missing = pd.Index(expected).difference(have, sort=False)
    if len(missing):
        raise SpectraInputError(f"{source}: column {missing[0]!r} (a category of {expected_source}) is missing")
    extra = have.difference(pd.Index(expected), sort=False)
    if len(extra):
        raise SpectraInputError(f"{source}: column {extra[0]!r} is not a category of {expected_source}")


def read_distribution_table(path: str | os.PathLike, *,
                            like: DistributionTable | CountTable | None = None) -> DistributionTable:
    """Read and validate a distribution table (CSV or Parquet, by extension); see
    :meth:`DistributionTable.from_frame` for ``like``."""
    return DistributionTable.from_frame(read_frame(path), source=str(path), like=like)


def read_count_table(path: str | os.PathLike, *,
                     like: DistributionTable | CountTable | None = None) -> CountTable:
    """Read and validate a counts table (CSV or Parquet): see :meth:`CountTable.from_frame`."""
    return CountTable.from_frame(read_frame(path), source=str(path), like=like)


def user_frame(data: Any, source: str, *, key: str = USER_COL) -> pd.DataFrame:
    """A DataFrame given in Python as a table keyed by ``key`` (default ``user_id``): the ``key`` column, or
    else the index (a named index, or any index but pandas' default 0..n-1 range), moved into a ``key``
    column; column labels become text, as a file's header would be. Without either, the table's own check
    reports the missing ``key`` column, as for a file; what is not a DataFrame is an error naming ``source``."""
    if not isinstance(data, pd.DataFrame):
        raise SpectraInputError(f"{source}: expected a pandas DataFrame, got {type(data).__name__}")
    frame = data.copy(deep=False)
    frame.columns = [str(c) for c in frame.columns]
    if key in frame.columns:
        return frame
    index = frame.index
    if isinstance(index, pd.MultiIndex) or (isinstance(index, pd.RangeIndex) and index.name is None):
        return frame  # no ids: the table's own check names the missing column, as for a file
    return frame.rename_axis(key).reset_index()


def as_table(data: "DistributionTable | pd.DataFrame", source: str, *,
             like: "DistributionTable | CountTable | None" = None) -> DistributionTable:
    """``data`` as a checked :class:`DistributionTable`: a table is returned as it is; a DataFrame (``user_id``
    column or index, one column per category) is checked like a file (:meth:`DistributionTable.from_frame`,
    errors naming ``source``)."""
    if isinstance(data, DistributionTable):
        return data
    if not isinstance(data, pd.DataFrame):
        raise SpectraInputError(f"{source}: expected a DistributionTable or a pandas DataFrame, got {type(data).__name__}")
    return DistributionTable.from_frame(user_frame(data, source), source, like=like)


def as_counts(data: "CountTable | pd.DataFrame", source: str, *,
              like: "DistributionTable | CountTable | None" = None) -> CountTable:
    """``data`` as a checked :class:`CountTable` (a DataFrame of integer counts: ``user_id`` column or index)."""
    if isinstance(data, CountTable):
        return data
    if not isinstance(data, pd.DataFrame):
        raise SpectraInputError(f"{source}: expected a CountTable or a pandas DataFrame, got {type(data).__name__}")
    return CountTable.from_frame(user_frame(data, source), source, like=like)


def align_tables(truth: DistributionTable, preds: Mapping[str, DistributionTable]) -> dict[str, DistributionTable]:
    """Return ``preds`` re-ordered to ``truth``'s users and categories; any mismatch is an error naming it."""
    truth_users = pd.Index(truth.users)
    aligned = {}
    for name, table in preds.items():
        check_same_categories(table.categories, truth.categories, table.source, truth.source)
        col = pd.Index(table.categories).get_indexer(truth.categories)
        pos = pd.Index(table.users).get_indexer(truth_users)
        if (pos < 0).any():
            user = truth.users[int(np.flatnonzero(pos < 0)[0])]
            raise SpectraInputError(f"{table.source}: user {user!r} of {truth.source} is missing")
        if len(table.users) != len(truth.users):
            extra = pd.Index(table.users).difference(truth_users)
            raise SpectraInputError(f"{table.source}: user {extra[0]!r} is not in {truth.source}")
        aligned[name] = DistributionTable(
            users=truth.users, categories=truth.categories, probs=table.probs[np.ix_(pos, col)], source=table.source
        )
    return aligned


# ---------------------------------------------------------------- JSON documents


def read_json(path: str | os.PathLike) -> dict:
    """Parse a JSON file; bad JSON is a one-line error with the line and column."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpectraInputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise SpectraInputError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise SpectraInputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return doc


def check_schema(doc: Any, expected: str, source: str) -> None:
    """``doc['schema']`` must be ``expected``'s family with the same major version (minor additions are fine)."""
    if not isinstance(doc, Mapping):
        raise SpectraInputError(f"{source}: expected a JSON object at the top level, got {type(doc).__name__}")
    family, major = expected.split("/")
    schema = doc.get("schema")
    if schema is None:
        raise SpectraInputError(f"{source}: no 'schema' field (expected {expected!r})")
    m = re.fullmatch(r"([\w.]+)/(\d+)(?:\.\d+)*", str(schema))
    if m is None or m.group(1) != family:
        raise SpectraInputError(f"{source}: unknown schema {schema!r} (expected {expected!r})")
    if m.group(2) != major:
        raise SpectraInputError(
            f"{source}: schema {schema!r} is an incompatible version (this spectra reads {expected!r})")


@contextlib.contextmanager
def json_errors(source: str, where: str = "") -> Iterator[None]:
    """Turn a missing key or a wrongly typed value met while rebuilding a result from JSON into a one-line
    :class:`SpectraInputError` naming ``source`` (and ``where``, a key path)."""
    at = f" under {where}" if where else ""
    try:
        yield
    except KeyError as exc:
        raise SpectraInputError(f"{source}: missing key {exc.args[0]!r}{at}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SpectraInputError):
            raise
        raise SpectraInputError(f"{source}: unexpected value{at} ({exc})") from None


# ---------------------------------------------------------------- atomic output


def _replace_from_temp(path: Path, write: Callable[[Path], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (NaN written as null)."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"
    _replace_from_temp(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_text(path: str | os.PathLike, text: str) -> None:
    _replace_from_temp(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_frame(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV or Parquet (by extension), atomically."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        _replace_from_temp(path, lambda tmp: frame.to_parquet(tmp, index=False))
    elif path.suffix.lower() == ".csv":
        _replace_from_temp(path, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        raise SpectraInputError(f"{path}: unknown table format {path.suffix!r} (use .csv or .parquet)")


def write_distribution_table(path: str | os.PathLike, table: DistributionTable) -> None:
    write_frame(path, table.to_frame())


@contextlib.contextmanager
def atomic_outputs(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Stage a command's outputs in a temporary directory; move them into ``out_dir`` only on success.

    Files are moved one by one with ``os.replace`` (each atomic); if the body raises, ``out_dir`` is left
    exactly as it was.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SpectraInputError(f"{out}: exists and is not a directory (output directory expected)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise SpectraInputError(f"{out}: cannot create the output directory ({exc.strerror or exc})") from None
    try:
        yield stage
        out.mkdir(parents=True, exist_ok=True)
        for src in sorted(stage.rglob("*")):
            if src.is_file():
                dst = out / src.relative_to(stage)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def json_safe(obj: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats (-> None) so JSON stays standard."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if np.isfinite(value) else None
    return obj

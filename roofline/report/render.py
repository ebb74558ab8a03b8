"""Output for every report: `table` (rich), `json` (exactly one document), `csv` (rows)."""
from __future__ import annotations

import csv
import io
import json
from enum import Enum
from typing import Callable, Iterable

import numpy as np
from rich.console import Console
from rich.table import Table

from roofline.jsonfile import to_jsonable


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def dumps_json(data) -> str:
    return json.dumps(to_jsonable(data), indent=2)


def rows_to_csv(rows: Iterable[dict]) -> str:
    rows = [to_jsonable(r) for r in rows]
    if not rows:
        return ""
    fields = list(dict.fromkeys(k for r in rows for k in r))  # union of keys, first-seen order
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def columns_to_rows(cols: dict[str, np.ndarray]) -> list[dict]:
    """{'a': [1, 2], 'b': [3, 4]} -> [{'a': 1, 'b': 3}, {'a': 2, 'b': 4}]."""
    keys = list(cols)
    lists = [np.asarray(cols[k]).tolist() for k in keys]
    return [dict(zip(keys, vals)) for vals in zip(*lists)]


def table(title: str | None, headers: list[str], rows: Iterable[Iterable], justify_right: bool = True) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold", show_header=any(headers))
    for i, h in enumerate(headers):
        t.add_column(h, justify="right" if (justify_right and i) else "left")
    for r in rows:
        t.add_row(*[str(c) for c in r])
    return t


def emit(data, fmt: Format, console: Console, tables: Callable[[], list], csv_rows: Callable[[], list[dict]],
         width: int | None = None):
    """Print `data` in `fmt`: json -> one document; csv -> csv_rows(); table -> the rich renderables
    (`width` characters wide, default: the console's)."""
    if fmt == Format.json:
        console.file.write(dumps_json(data) + "\n")
    elif fmt == Format.csv:
        console.file.write(rows_to_csv(csv_rows()))
    else:
        for t in tables():
            console.print(t, width=width)

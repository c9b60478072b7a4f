"""Id lists ("0-24", "25,26,27", "1,3,5-6") and the subset of a data source they name.

An id names an example by its name when the source has names (an image folder's file
stems, the ``name`` feature of fcnjax's tfds builders), else by its index. The ISBI 2012
images are named 0 ... 29 in that order, so "0-24" is the U-Net paper's training split
whichever source reads them.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from fcnjax.run.errors import ConfigError

ID_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_ids(text: str) -> list[int]:
    """"0-24" -> [0, ..., 24]; "1,3,5-6" -> [1, 3, 5, 6]; "" -> [] (spaces ignored).

    Raises ValueError for anything else, e.g. "3-1" or "a-b".
    """
    text = text.replace(" ", "")
    if not text:
        return []
    if not ID_LIST.match(text):
        raise ConfigError(f"bad id list {text!r}: write ids and ranges like \"0-24\" or "
                          "\"1,3,5-6\"")
    ids = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if int(hi or lo) < int(lo):
            raise ConfigError(f"bad id range {part!r} in {text!r}: it runs backwards")
        ids.extend(range(int(lo), int(hi or lo) + 1))
    return ids


class Subset:
    """The examples of ``source`` at ``indices``, in that order; a source itself."""

    def __init__(self, source: Any, indices: Sequence[int]):
        self.source, self.indices = source, list(indices)
        names = getattr(source, "names", None)
        self.names = None if names is None else [names[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.source[self.indices[index]]

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.source!r})"


def select(source: Any, text: str, what: str = "ids") -> Any:
    """The examples of ``source`` named by the id list ``text`` (all of them if empty).

    Ids match ``source.names`` when the source has names (None: it has none), else indices.
    ``what`` names the list in errors (e.g. "config.input.train_ids"); an id naming no
    example is a ValueError that lists every such id.
    """
    ids = parse_ids(text)
    if not ids:
        return source
    names = getattr(source, "names", None)
    if names is None:
        missing = [i for i in ids if i >= len(source)]
        indices = ids
        have = f"indices 0-{len(source) - 1}"
    else:
        position = {name: i for i, name in enumerate(names)}
        missing = [i for i in ids if str(i) not in position]
        indices = [position.get(str(i)) for i in ids]
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        have = f"names {shown}"
    if missing:
        raise ConfigError(f"{what} {text!r} names {len(missing)} example(s) that {source!r} "
                          f"lacks: {', '.join(map(str, missing))} (it has {have})")
    return Subset(source, indices)

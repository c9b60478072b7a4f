"""The FCN reference's published caffemodels (:mod:`fcnjax.weights.zoo`) from the command line.

    python -m fcnjax.zoo list
    python -m fcnjax.zoo convert fcn8s-heavy-pascal.caffemodel --model voc-fcn8s --output /tmp/fcn8s

``import fcnjax.zoo; fcnjax.zoo.load(FILE, NAME)`` returns a file's params (no file written).
"""

from __future__ import annotations

import argparse
import os
import sys

from fcnjax.run import errors
from fcnjax.weights.zoo import TABLE, convert, entry, load, load_config

__all__ = ["TABLE", "convert", "entry", "load", "main", "table_text"]


def table_text() -> str:
    """The table as aligned text, one row per net."""
    head = ("name", "fcnjax model", "config", "classes", "file", "score", "url")
    rows = [head] + [(e.name, e.model + (" (trunk)" if e.trunk_only else ""),
                      f"configs/{e.config}", str(e.classes), e.file or "-", e.score,
                      e.url or "(not published)") for e in TABLE]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]
                     for r in rows)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.debugging(argv)
    with errors.one_line_errors("fcnjax.zoo", debug):
        argv = errors.renamed_flags(argv, {"--out": "--output"}, "fcnjax.zoo")
    parser = argparse.ArgumentParser(prog="fcnjax.zoo", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the published nets")
    conv = commands.add_parser("convert", help="a caffemodel as an fcnjax checkpoint")
    conv.add_argument("file", help="the downloaded .caffemodel")
    conv.add_argument("--model", required=True, help="the row's name (see list)")
    conv.add_argument("--output", required=True, help="folder to write (a workdir)")
    conv.add_argument("--config", default=None,
                      help="config file of the state to write (default: the row's)")
    args = parser.parse_args(argv)
    with errors.one_line_errors("fcnjax.zoo", debug):
        if args.command == "list":
            print(table_text())
            return
        config = load_config(args.config) if args.config else None
        step = convert(args.file, args.model, args.output, config)
        print(f"wrote {step}: evaluate with --checkpoint {args.output} and "
              f"--config {args.config or os.path.join('configs', entry(args.model).config)}")


if __name__ == "__main__":
    main()

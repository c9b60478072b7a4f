"""The markdown rows of RESULTS.md's toolkit comparison, from ``scripts/toolkit_study.sh``'s
output folder.

    python scripts/toolkit_table.py OUT

For each dataset folder of OUT and each row in it: mean IU, pixel accuracy, the IoU of the
rarest classes (CamVid's five smallest by training pixels; ISBI's membrane) and, where the
evaluation has them, the ISBI challenge's V_Rand and V_Info (thinned). Then the rule for the
"best combination" row, fixed before any row ran: every change that beat the paper's recipe
on mean IU by itself, joined (of two loss changes, the better one).
"""

from __future__ import annotations

import glob
import json
import os
import sys

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RARE = {"camvid": ("pole", "sign_symbol", "fence", "pedestrian", "bicyclist"),
        "isbi": ("membrane",)}
"""Classes whose IoU gets a column: CamVid's five with the fewest training pixels
(1.0, 1.2, 1.1, 0.6, 0.3 %), ISBI's thin membranes."""

ORDER = ("paper", "dice", "lovasz", "adamw", "batchnorm")
LOSSES = ("dice", "lovasz")


def latest_eval(folder: str) -> dict | None:
    """The eval_<split>_<step>.json of the highest step in ``folder``, or None."""
    found = glob.glob(os.path.join(folder, "eval_*_*.json"))
    if not found:
        return None
    return json.loads(open(max(found, key=lambda p: int(p.rsplit("_", 1)[1][:-5]))).read())


def class_ids(dataset: str) -> dict[str, int]:
    from fcnjax.data.classes import class_names

    names = class_names("camvid", 11) if dataset == "camvid" else class_names("isbi2012", 2)
    return {name: i for i, name in enumerate(names)}


def row_order(name: str) -> tuple:
    parts = name.split("+")
    return (len(parts), [ORDER.index(p) if p in ORDER else len(ORDER) for p in parts])


def best_combination(results: dict[str, dict]) -> str:
    """The changes that beat "paper" on mean IU alone, joined by "+" (one loss change)."""
    base = results["paper"]["mean_iu"]
    better = [name for name in ORDER[1:] if name in results
              and results[name]["mean_iu"] > base]
    losses = [name for name in better if name in LOSSES]
    if len(losses) > 1:
        keep = max(losses, key=lambda name: results[name]["mean_iu"])
        better = [name for name in better if name not in LOSSES or name == keep]
    return "+".join(better) or "paper"


def main(out: str) -> None:
    for dataset in sorted(os.listdir(out)):
        rows = {name: latest_eval(os.path.join(out, dataset, name))
                for name in os.listdir(os.path.join(out, dataset))}
        rows = {name: row for name, row in rows.items() if row}
        ids, rare = class_ids(dataset), RARE.get(dataset, ())
        isbi = any("isbi2012" in row for row in rows.values())
        head = ["row", "mean IU", "pixel acc."] + [f"IoU {c}" for c in rare]
        head += ["V_Rand", "V_Info"] if isbi else []
        print(f"\n{dataset}\n\n| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for name in sorted(rows, key=row_order):
            row = rows[name]
            cells = [name, f"{100 * row['mean_iu']:.1f}", f"{100 * row['pixel_acc']:.1f}"]
            cells += [f"{100 * row['class_iu'][ids[c]]:.1f}"
                      if row["class_iu"][ids[c]] is not None else "-" for c in rare]
            if isbi:
                cells += [f"{row['isbi2012']['v_rand']:.4f}", f"{row['isbi2012']['v_info']:.4f}"]
            print("| " + " | ".join(cells) + " |")
        if "paper" in rows:
            print(f"\nbest combination by the rule: {best_combination(rows)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.splitlines()[2].strip())
    main(sys.argv[1])

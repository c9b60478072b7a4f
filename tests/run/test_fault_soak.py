"""scripts/fault_soak.py: its plan and comparison, and a short soak (a SIGKILL, a SIGTERM
and a damaged checkpoint on a 12-step run) that must end as the uninterrupted run did."""

import collections
import importlib.util
import json
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parents[2]


@pytest.fixture(scope="module")
def soak():
    """The script as a module."""
    spec = importlib.util.spec_from_file_location("fault_soak", ROOT / "scripts" / "fault_soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_three_cycles_are_one_of_each_family(soak):
    plan = soak.schedule(3, np.random.default_rng(0))
    assert sorted(family for family, _ in plan) == ["damage", "sigkill", "sigterm"]


def test_a_longer_plan_has_every_damage_and_a_third_of_the_kills_in_saves(soak):
    plan = soak.schedule(30, np.random.default_rng(7))
    families = collections.Counter(family for family, _ in plan)
    kinds = collections.Counter(kind for family, kind in plan if family == "damage")
    assert len(plan) == 30 and set(kinds) == set(soak.DAMAGES)
    kills = families["sigkill"] + families["sigkill-in-save"]
    assert families["sigkill-in-save"] == round(kills / 3)
    assert abs(kills - families["sigterm"]) <= 1
    assert plan == soak.schedule(30, np.random.default_rng(7))  # the seed repeats it


def test_a_cycle_reaches_past_two_checkpoints_but_short_of_the_end(soak):
    assert soak.reach(200, 0, 100) == 6
    assert soak.reach(200, 100, 10) == 20
    assert soak.reach(60, 57, 5) == 2
    assert soak.reach(60, 60, 5) == 1


def test_the_history_comparison_sees_lost_extra_duplicated_and_changed_records(soak):
    def record(step, mode="train", loss=1.0, speed=5.0):
        return {"step": step, "mode": mode, "loss": loss, "steps_per_second": speed}

    reference = [record(3), record(6), record(6, "eval")]
    same = [record(3, speed=9.0), record(6), record(6, "eval")]  # wall-clock fields differ
    assert soak.compare_history(reference, same) == {
        "lost": [], "extra": [], "duplicated": 0, "differing": []}
    found = soak.compare_history(reference, [record(3), record(3), record(6, loss=2.0),
                                             record(9)])
    assert found["lost"] == [[6, "eval", None]] and found["extra"] == [[9, "train", None]]
    assert found["duplicated"] == 1
    assert found["differing"] == [{"key": [6, "train", None], "fields": ["loss"]}]


def test_a_short_soak_ends_identical_to_the_reference(soak, tmp_path, capsys):
    status = soak.main(["--cycles", "3", "--steps", "12", "--seed", "0",
                        "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "soak.json").read_text())
    table = report["table"]
    assert status == 0, printed
    assert table["SIGKILL at a random time"] + table["SIGKILL in a checkpoint save"] == 1
    assert table["SIGTERM at a random time"] == 1
    assert table["damages applied"] == 1, printed
    assert table["identical finishes"] == 1 and table["params max |diff|"] == 0.0
    assert table["final eval metrics equal"] == 1
    assert table["records lost"] == 0 and table["duplicated records"] == 0
    assert table["extra records"] == 0
    assert table["checkpoints moved aside"] >= 1
    assert table["tracebacks"] == 0 and table["hangs"] == 0, printed
    assert table["unexpected exit statuses"] == 0, printed
    assert table["SIGTERM stops without their checkpoint"] == 0
    # not asserted: "records with other values" (a SIGTERM between two logs changes the
    # next train record after the resume: see RELIABILITY.md)
    assert "identical finishes" in printed and (tmp_path / "logs" / "final_1.err").exists()

"""Table 1's static columns, computed from the networks, against the paper."""

import json
import subprocess
import sys

import pytest

from fcnjax.models import describe


@pytest.mark.parametrize("name", sorted(describe.PAPER_TABLE1))
def test_describe_reproduces_paper_table1(name):
    row, paper = describe.describe(name), describe.PAPER_TABLE1[name]
    assert round(row["params"] / 1e6) == paper["params"] / 1e6
    for key in ("conv_layers", "receptive_field", "max_stride"):
        assert row[key] == paper[key], key


def test_describe_reports_the_derived_crop_offsets():
    assert describe.describe("fcn8s")["crop_offsets"] == {
        "score_pool4c": 5, "score_pool3c": 9, "score": 31}
    assert describe.describe("fcn_vgg16") == {**describe.describe("fcn32s"), "model": "fcn_vgg16"}
    unet = describe.describe("unet")
    assert (unet["conv_layers"], unet["max_stride"], unet["params"]) == (23, 16, 31_030_658)
    assert unet["crop_offsets"] == {"crop1": 88, "crop2": 40, "crop3": 16, "crop4": 4}


def test_learnable_upsampling_counts_its_layers_and_parameters():
    fixed, learned = describe.describe("fcn8s"), describe.describe("fcn8s", learnable_upsampling=True)
    assert learned["conv_layers"] == fixed["conv_layers"] + 3
    assert learned["params"] - fixed["params"] == 21 * 21 * (16 + 16 + 256)


def test_forward_time_describe_json_prints_one_object_per_model():
    out = subprocess.run([sys.executable, "benchmarks/forward_time.py", "--describe", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["model"] for r in rows] == list(describe.TABLE1_MODELS)
    assert all(set(r) == {"model", "params", "conv_layers", "receptive_field", "max_stride",
                          "crop_offsets"} for r in rows)

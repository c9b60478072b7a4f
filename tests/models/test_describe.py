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


def unet_paper_params(channels=1, classes=2, features=64, levels=4):
    """The U-Net paper's figure 1 counted by hand: two 3x3 convs per level down and up, a
    2x2 up-convolution per level, a 1x1 score layer; every layer with a bias."""
    def conv(c_in, c_out, k=3):
        return (c_in * k * k + 1) * c_out

    width = [features * 2 ** i for i in range(levels + 1)]
    down = conv(channels, width[0]) + conv(width[0], width[0]) + sum(
        conv(width[i - 1], width[i]) + conv(width[i], width[i]) for i in range(1, levels + 1))
    up = sum(conv(width[i + 1], width[i], 2) + conv(2 * width[i], width[i])
             + conv(width[i], width[i]) for i in range(levels))
    return down + up + conv(width[0], classes, 1)


def test_describe_reports_the_derived_crop_offsets():
    assert describe.describe("fcn8s")["crop_offsets"] == {
        "score_pool4c": 5, "score_pool3c": 9, "score": 31}
    assert describe.describe("fcn_vgg16") == {**describe.describe("fcn32s"), "model": "fcn_vgg16"}
    unet = describe.describe("unet")
    assert (unet["conv_layers"], unet["max_stride"]) == (23, 16)
    assert unet["params"] == unet_paper_params()
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

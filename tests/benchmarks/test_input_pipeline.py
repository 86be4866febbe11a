"""benchmarks/input_pipeline.py: times every input pipeline (tf.data, once, on
the TensorFlow pass)."""

import json

import numpy as np
import pytest

from _checks import check_bad_arguments_exit
from _checks import check_script_help
from _checks import load_benchmark
from conftest import BACKEND

input_pipeline = load_benchmark("input_pipeline")


def test_help_says_what_the_script_answers(capsys):
    check_script_help(input_pipeline, capsys)


def test_bad_arguments_exit_with_a_clear_message(capsys):
    check_bad_arguments_exit(input_pipeline, ["--batches", "-1"],
                             "expected an int >= 1; got '-1'", capsys)


def test_input_pipeline_times_every_pipeline(tmp_path, capsys):
    tf = pytest.importorskip("tensorflow")
    if BACKEND != "tensorflow":
        pytest.skip("tf.data only: runs once, with the TensorFlow backend")
    rng = np.random.default_rng(0)
    (tmp_path / "cifar100").mkdir()
    np.savez(tmp_path / "cifar100" / "train_0.npz",
             x=rng.integers(0, 256, (64, 32, 32, 3), np.uint8), y=np.arange(64) % 100)
    (tmp_path / "imagenet_sample").mkdir()
    for i in range(2):
        image = tf.constant(rng.integers(0, 256, (40, 48, 3), np.uint8))
        tf.io.write_file(str(tmp_path / "imagenet_sample" / f"{i}.JPEG"),
                         tf.io.encode_jpeg(image))
    assert input_pipeline.main([
        "--data-dir", str(tmp_path), "--batches", "2", "--imagenet-batches", "1",
        "--warmup", "1", "--cifar-batch-size", "8", "--imagenet-batch-size", "2",
        "--output", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert len(rows) == 6 and all(r["images_per_s"] > 0 for r in rows)
    assert "| ImageNet evaluation | 2 |" in capsys.readouterr().out

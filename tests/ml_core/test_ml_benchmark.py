"""``python -m ml_core benchmark`` end to end on a tiny backbone: report contents, not timings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ml_core.__main__ import main
from tests.ml_core.conftest import make_examples


def _write_bank(folder: Path) -> tuple[Path, Path]:
    responses, items = folder / "responses.csv", folder / "items.csv"
    with responses.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "response_id", "text", "score", "split"])
        for item_id, seed in (("q1", 0), ("q2", 1), ("q3", 2)):
            for n, example in enumerate(make_examples(40, seed=seed)):
                writer.writerow([item_id, f"{item_id}-{n}", example.text, example.label, ""])
    with items.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "language", "prompt", "reference_answer", "max_score"])
        for item_id in ("q1", "q2", "q3"):
            writer.writerow([item_id, "en", f"question {item_id}", "tcp udp", 2])
    return responses, items


def test_benchmark_compares_every_kind_with_the_baseline_on_the_same_folds(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    responses, items = _write_bank(tmp_path)
    out = tmp_path / "quality"
    code = main(
        [
            "benchmark",
            "--responses",
            str(responses),
            "--items",
            str(items),
            "--backbone",
            str(tiny_backbone),
            "--kinds",
            "auto,head",
            "--folds",
            "3",
            "--cv-repeats",
            "2",
            "--epochs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    quality = json.loads((out / "report.json").read_text())["quality"]
    assert quality["eval"] == "cv" and quality["kinds"] == ["baseline", "auto", "head"]
    assert set(quality["items"]) == {"q1", "q2", "q3"}
    for row in quality["items"].values():
        for kind in ("baseline", "auto", "head"):
            assert len(row[kind]["fold_qwk"]) == 6  # 3 folds x 2 repeats, the same for all
            low, high = row[kind]["qwk_ci"]
            assert low <= row[kind]["qwk"] <= high
        assert row["auto"]["qwk_minus_baseline"] == pytest.approx(
            row["auto"]["qwk"] - row["baseline"]["qwk"]
        )
    summary = quality["summary"]["auto"]
    assert set(summary) == {"all", "en"} and summary["all"]["items"] == 3
    assert "paired_t_p" in summary["all"]["vs_baseline"]
    assert "wilcoxon_p" in summary["all"]["vs_baseline"]
    assert 0.0 <= summary["all"]["ece_pooled"] <= 1.0
    # frozen vectors were cached on disk for the next run
    assert list((out / "embeddings").rglob("*.npy"))
    markdown = (out / "report.md").read_text()
    assert "## Summary" in markdown and "auto - base" in markdown


def test_benchmark_split_mode_with_lora_measures_the_engine(
    tiny_backbone: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    responses, items = _write_bank(tmp_path)
    out = tmp_path / "bench"
    args = ["--responses", str(responses), "--items", str(items), "--backbone", str(tiny_backbone)]
    timing = ["--repeats", "2", "--latency-samples", "3", "--throughput-answers", "8"]
    code = main(
        [
            "benchmark",
            *args,
            "--kinds",
            "lora",
            "--eval",
            "split",
            "--epochs",
            "1",
            "--backends",
            "torch,onnx-int8",
            *timing,
            "--onnx-cache",
            str(tmp_path / "onnx"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert list((tmp_path / "onnx").rglob("*.onnx")), "the graphs go to the folder named"
    report = json.loads((out / "report.json").read_text())
    quality = report["quality"]
    assert quality["eval"] == "split" and set(quality["items"]) == {"q1", "q2", "q3"}
    for row in quality["items"].values():
        assert 0.0 <= row["lora"]["accuracy"] <= 1.0 and len(row["lora"]["fold_qwk"]) == 1
    assert quality["summary"]["lora"]["all"]["vs_baseline"]["wins"] >= 0

    engine = report["engine"]
    assert engine["items_loaded"] == 3 and engine["mixed_batch_items"] == 3
    for backend in ("torch", "onnx-int8"):
        measured = engine["backends"][backend]
        assert measured["mixed_batch_cost_ratio"] > 0 and measured["answers_per_second"] > 0
        # the fresh process holds at least the backbone weights; items add a little on top
        assert measured["rss_backbone_bytes"] > measured["backbone_bytes"]
        assert measured["rss_ratio"] == pytest.approx(
            1 + measured["rss_items_bytes"] / measured["rss_backbone_bytes"]
        )
        assert set(measured["qwk_per_item"]) == {"q1", "q2", "q3"}
        for item_id, confusion in measured["confusion_per_item"].items():
            n_test = quality["items"][item_id]["n_test_per_fold"]
            assert len(confusion) == 3 and sum(map(sum, confusion)) == n_test
    assert "int8_mean_qwk_shift" in engine
    assert "Served QWK per item" in (out / "report.md").read_text()

    # --reuse reads the trained engine artifacts back instead of training again
    capsys.readouterr()
    folder = out / "artifacts" / "lora" / "q1"
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert (
        main(
            [
                "benchmark",
                *args,
                "--kinds",
                "lora",
                "--eval",
                "split",
                "--epochs",
                "1",
                "--reuse",
                "--backends",
                "torch",
                *timing,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp

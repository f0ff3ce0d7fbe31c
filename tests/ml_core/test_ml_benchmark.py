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


def test_benchmark_reports_quality_memory_and_served_scores(
    tiny_backbone: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SCORING_ONNX_CACHE", str(tmp_path / "onnx"))
    responses, items = _write_bank(tmp_path)
    out = tmp_path / "bench"
    args = ["--responses", str(responses), "--items", str(items), "--backbone", str(tiny_backbone)]
    timing = ["--repeats", "2", "--latency-samples", "3", "--throughput-answers", "8"]
    code = main(
        [
            "benchmark",
            *args,
            "--kinds",
            "lora,head",
            "--epochs",
            "1",
            "--backends",
            "torch,onnx-int8",
            *timing,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())

    assert set(report["items"]) == {"q1", "q2", "q3"}
    for row in report["items"].values():
        assert 0.0 <= row["lora"]["accuracy"] <= 1.0 and row["lora"]["artifact_bytes"] > 0
    assert report["quality"]["paired_t_test_qwk"]["lora_vs_head"]["n"] == 3

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
            n_test = report["items"][item_id]["n_test"]
            assert len(confusion) == 3 and sum(map(sum, confusion)) == n_test
    assert "int8_mean_qwk_shift" in engine
    assert "Served QWK per item" in (out / "report.md").read_text()

    # --reuse reads the trained artifacts back instead of training again
    capsys.readouterr()
    assert (
        main(
            [
                "benchmark",
                *args,
                "--kinds",
                "lora",
                "--reuse",
                "--backends",
                "none",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    again = json.loads((out / "report.json").read_text())
    assert again["items"]["q1"]["lora"]["qwk"] == report["items"]["q1"]["lora"]["qwk"]
    assert "engine" not in again

"""``python -m ml_core`` train, evaluate and score on a tiny backbone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ml_core.__main__ import main
from tests.ml_core.conftest import make_examples


def _write_responses(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "response_id", "text", "score", "split"])
        for n, example in enumerate(make_examples(45)):
            writer.writerow(["q1", f"r{n}", example.text, example.label, ""])


def test_cli_trains_evaluates_and_scores(
    tiny_backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    responses = tmp_path / "responses.csv"
    _write_responses(responses)
    backbone = ["--backbone", str(tiny_backbone)]
    out = tmp_path / "artifacts"
    assert (
        main(
            [
                "train",
                "--responses",
                str(responses),
                "--out",
                str(out),
                "--kind",
                "head",
                "--epochs",
                "1",
                *backbone,
            ]
        )
        == 0
    )
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["item_id"] == "q1" and trained["kind"] == "head"

    assert (
        main(["evaluate", "--artifact", str(out / "q1"), "--responses", str(responses), *backbone])
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == trained["metrics"]["n_test"]
    assert metrics["qwk"] == pytest.approx(trained["metrics"]["qwk"])

    answers = tmp_path / "answers.csv"
    answers.write_text("item_key,text\nq1,tcp udp port\nq1,\nnope,tcp\n", encoding="utf-8")
    assert (
        main(["score", "--artifact", f"q1={out / 'q1'}", "--input", str(answers), *backbone]) == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["error"] is None for line in lines] == [True, False, False]
    assert lines[0]["score"] in (0, 1, 2)


def test_cli_trains_auto_by_default_and_evaluates_it(
    tiny_backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    responses = tmp_path / "responses.csv"
    _write_responses(responses)
    backbone = ["--backbone", str(tiny_backbone)]
    out = tmp_path / "artifacts"
    assert main(["train", "--responses", str(responses), "--out", str(out), *backbone]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["kind"] == "auto" and "qwk_ci_low" in trained["metrics"]
    assert (
        main(
            [
                "evaluate",
                "--artifact",
                str(out / "q1"),
                "--responses",
                str(responses),
                "--split",
                "all",
                *backbone,
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 45 and 0.0 <= metrics["accuracy"] <= 1.0


def test_cli_truncates_a_backbone_to_its_first_layers(
    tiny_backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ml_core.backbone import backbone_fingerprint

    out = tmp_path / "one-layer"
    assert main(["truncate-backbone", "--backbone", str(tiny_backbone), "--layers", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert printed["fingerprint"] == backbone_fingerprint(str(out))
    assert printed["fingerprint"] != backbone_fingerprint(str(tiny_backbone))
    cut = AutoModel.from_pretrained(out).eval()
    full = AutoModel.from_pretrained(tiny_backbone).eval()
    assert cut.config.num_hidden_layers == 1 and full.config.num_hidden_layers == 2
    batch = AutoTokenizer.from_pretrained(out)(["tcp udp ack", "udp"], padding=True,
                                               return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        after_one = full(**batch, output_hidden_states=True).hidden_states[1]
        got = cut(**batch).last_hidden_state
    torch.testing.assert_close(got, after_one)  # the first layer, exactly as in the full model

    # more layers than the backbone has: a clear error, nothing written
    assert main(["truncate-backbone", "--backbone", str(tiny_backbone), "--layers", "3",
                 "--out", str(tmp_path / "three")]) == 2  # fmt: skip
    assert "between 1 and 2" in capsys.readouterr().err
    assert not (tmp_path / "three").exists()

"""Delivering results: sweep (ablation table), report (HTML, checked in lxml and in headless
Chromium), latency/cost of predict, export of a fully tuned run and WiSE-FT interpolation."""

import json
import shutil
import subprocess

import lxml.html
import pytest
import torch
from PIL import Image

from docvlm.cli import main
from docvlm.config import TextMetricConfig, save_config
from docvlm.data.synthetic import LineStyle, write_synthetic_lines
from docvlm.errors import ConfigError
from docvlm.predict.latency import LatencyMeter, cost_per_1000
from docvlm.report.diff import operations
from docvlm.report.html import build_report
from docvlm.sweep import grid, parse_sets, point_name

from conftest import make_config

SWEEP = "tuning.lora.r=2,4,-1"  # -1: a point that fails (peft refuses it) must not end the sweep


# --------------------------------------------------------------------------------------------
# Pure parts


def test_parse_sets_and_grid_are_a_cartesian_product():
    axes = parse_sets(["tuning.lora.r=8,16", "train.learning_rate=1e-4,1e-3,1e-4"])
    assert axes == [("tuning.lora.r", ["8", "16"]), ("train.learning_rate", ["1e-4", "1e-3"])]
    points = grid(axes)
    assert len(points) == 4 and points[1] == [("tuning.lora.r", "8"), ("train.learning_rate", "1e-3")]
    assert point_name(points[1]) == "sweep-tuning.lora.r-8-train.learning_rate-1e-3"
    for bad in (["tuning.lora.r"], ["=8"], ["tuning.lora.r=8,,16"], ["run_name=a,b"], ["a.b=1", "a.b=2"], []):
        with pytest.raises(ConfigError):
            parse_sets(bad)


def test_latency_summary_by_hand():
    meter = LatencyMeter(batch_size=4)
    meter.add_batch(4, 0.4)  # 100 ms per sample
    meter.add_batch(2, 0.1)  # a last, smaller batch: 50 ms per sample
    figures = meter.summary(price_per_hour=3.6)
    assert figures["samples"] == 6 and figures["samples_per_second"] == pytest.approx(12.0)
    assert figures["mean_ms"] == pytest.approx(500 / 6) and figures["p50_ms"] == pytest.approx(100.0)
    assert figures["p95_ms"] == pytest.approx(100.0)
    # $3.60 an hour = $0.001 a second; 1000 images at 12/s take 83.3 s.
    assert figures["cost_per_1000_images"] == pytest.approx(0.001 * 1000 / 12)
    assert figures["peak_memory_mb"] > 0 and figures["device"]
    assert cost_per_1000(None, 12.0) is None


def test_diff_operations_follow_the_metric_alignment():
    ops = operations("abcd", "abxde", TextMetricConfig())
    assert ops == [("equal", "a", "a"), ("equal", "b", "b"), ("substitution", "c", "x"), ("equal", "d", "d"),
                   ("insertion", "∅", "e")]
    assert [op for op, _, _ in operations("abc", "ac", TextMetricConfig())] == ["equal", "deletion", "equal"]
    # Grapheme units: e + combining acute is one column, substituted as a whole.
    graphemes = operations("ce\u0301", "ce", TextMetricConfig(unit="grapheme"))
    assert graphemes == [("equal", "c", "c"), ("substitution", "e\u0301", "e")]


# --------------------------------------------------------------------------------------------
# A sweep over a tiny model, then its report


@pytest.fixture(scope="module")
def sweep_run(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    lines = write_synthetic_lines(root / "lines", {"train": 16, "validation": 4, "test": 6}, LineStyle(width=112),
                                  seed=3)
    # Two document types in the test split, so the per-group table has rows.
    test_file = lines / "test.jsonl"
    rows = [json.loads(line) for line in test_file.read_text().splitlines()]
    test_file.write_text("".join(json.dumps({**row, "doctype": "form" if i % 2 else "ledger"}) + "\n"
                                 for i, row in enumerate(rows)))
    cfg = make_config(root, tiny_models["qwen2_vl"], lines, "--run_name", "sw", "--train.max_steps", "3",
                      "--train.eval_steps", "0", "--train.save_steps", "3", "--evaluate.bootstrap_resamples", "200",
                      "--data.datasets.0.group_column", "doctype", "--tuning.lora.dropout", "0")
    config_file = root / "sweep.yaml"
    save_config(cfg, config_file)
    return config_file, cfg.run_dir


@pytest.fixture(scope="module")
def swept(sweep_run):
    config_file, sweep_dir = sweep_run
    status = main(["--quiet", "sweep", str(config_file), "--set", SWEEP])
    assert status == 0
    return sweep_dir, json.loads((sweep_dir / "sweep.json").read_text())


def test_sweep_writes_the_ablation_table(swept, capsys):
    sweep_dir, table = swept
    points = {p["settings"]["tuning.lora.r"]: p for p in table["points"]}
    assert [p["status"] for p in table["points"]] == ["ok", "ok", "failed"]
    assert "'tuning.lora.r': must be >= 1" in points["-1"]["error"]
    for r in ("2", "4"):
        point = points[r]
        assert point["run"] == str(sweep_dir / f"sweep-tuning.lora.r-{r}")
        metrics = json.loads((sweep_dir / f"sweep-tuning.lora.r-{r}" / "metrics" / "test.json").read_text())
        result = metrics["datasets"]["lines"]
        cer = point["datasets"]["lines"]["metrics"]["cer"]
        assert cer["tuned"] == result["tuned"]["cer"]["value"] and cer["tuned_ci"] == result["tuned"]["cer"]["ci"]
        assert point["train_seconds"] > 0 and point["peak_memory_mb"] > 0 and point["global_step"] == 3
        assert result["latency"]["tuned"]["samples"] == 6  # evaluate records latency per system
    # LoRA parameters grow linearly with the rank.
    assert points["4"]["trainable_parameters"] == 2 * points["2"]["trainable_parameters"]


def test_sweep_refuses_an_unknown_key_before_training(sweep_run, capsys):
    config_file, sweep_dir = sweep_run
    assert main(["sweep", str(config_file), "--set", "tuning.lora.rank=2,4"]) == 2
    assert "error: --set tuning.lora.rank: no such config key" in capsys.readouterr().err
    assert main(["sweep", str(config_file), "--set", "data.datasets.3.name=a"]) == 2


def test_sweep_rerun_reuses_finished_points(sweep_run, swept):
    from docvlm.sweep import run_sweep

    config_file, sweep_dir = sweep_run
    table = run_sweep(config_file, [SWEEP], progress=False)
    assert [p["status"] for p in table["points"]] == ["reused", "reused", "failed"]
    assert table["points"][0]["datasets"] == swept[1]["points"][0]["datasets"]


def _dom(path):
    return lxml.html.fromstring(path.read_text(encoding="utf-8"))


def _decorate_point(point_dir):
    """What the failure-analysis and retention helpers write, added to a point's files."""
    metrics_file = point_dir / "metrics" / "test.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["datasets"]["lines"]["analysis"]["tuned"]["failures"] = {
        "task": "transcription", "wrong": 6, "total": 6,
        "types": {"hallucination": {"count": 4, "share": 4 / 6, "examples": [
            {"id": "test-000000", "reference": "123", "prediction": "123999999"}]},
            "empty": {"count": 2, "share": 2 / 6, "examples": [{"id": "test-000001", "reference": "45",
                                                                "prediction": ""}]}}}
    metrics_file.write_text(json.dumps(metrics))
    (point_dir / "metrics" / "retention.json").write_text(json.dumps(
        {"suites": {"docvqa": {"anls": {"base": 0.8, "tuned": 0.6, "verdict": "forgot"}}}}))
    return metrics["datasets"]["lines"]


def test_report_of_a_run_holds_its_values_diffs_and_images(swept, tmp_path):
    sweep_dir, _ = swept
    point_dir = sweep_dir / "sweep-tuning.lora.r-4"
    result = _decorate_point(point_dir)
    main(["report", str(point_dir)])
    page = point_dir / "report.html"
    dom = _dom(page)
    text = dom.text_content()
    for metric in ("cer", "wer"):
        assert f"{result['tuned'][metric]['value']:.2%}" in text and f"{result['base'][metric]['value']:.2%}" in text
        low, high = result["tuned"][metric]["ci"]
        assert f"[{low * 100:.2f}, {high * 100:.2f}]" in text
        assert f"{result['p_value'][metric]:.3f}" in text
    assert dom.xpath("//span[contains(@class,'diff-sub') or contains(@class,'diff-ins') or contains(@class,'diff-del')]")
    images = dom.xpath("//div[@class='sample']/img/@src")
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert dom.xpath("//svg")  # training curves, inline
    # Per document type: both groups, with base, tuned and delta.
    ledger = result["analysis"]["tuned"]["groups"]["group"]["ledger"]["cer"]
    assert "ledger" in text and "form" in text and f"{ledger:.2%}" in text
    assert "hallucination" in text and "123999999" in text  # failure analysis
    assert "75.0%" in text and "forgot" in text  # retention: 0.6 / 0.8
    assert "samples/s" in text  # latency table
    summary = json.loads((point_dir / "train_summary.json").read_text())
    assert summary["model_family"] == "qwen2_vl" and "qwen2_vl" in text  # detected (config says null)
    assert summary["selection_metric"] is None and "best eval" not in text  # trained without evaluation
    # Self-contained: nothing is fetched from anywhere.
    for attribute in ("src", "href"):
        assert not [v for v in dom.xpath(f"//@{attribute}") if not v.startswith(("data:", "#"))]
    assert "<link" not in page.read_text() and "<script" not in page.read_text()


def test_best_metric_row_follows_the_selection_metric():
    from docvlm.report.html import _best_metric_row

    assert _best_metric_row({"selection_metric": "eval_anls", "best_eval_anls": 0.8125}) == \
        ["best eval anls (checkpoint selection)", "81.25%"]
    assert _best_metric_row({"selection_metric": "eval_cider_d", "best_eval_cider_d": 1.25})[1] == "1.25"
    assert _best_metric_row({"selection_metric": "eval_loss", "best_eval_loss": 0.5})[1] == "0.5"
    assert _best_metric_row({"best_eval_cer": 0.031}) == ["best eval cer (checkpoint selection)", "3.10%"]
    assert _best_metric_row({"selection_metric": None})[1] is None  # no evaluation: the row is left out


def test_report_of_the_sweep_is_an_ablation_page(swept):
    sweep_dir, table = swept
    target, summary = build_report([sweep_dir])
    assert target == sweep_dir / "report.html" and "3 points" in summary
    dom = _dom(target)
    rows = dom.xpath("//h2[text()='Ablation']/following::table[1]/tbody/tr")
    assert len(rows) == 5  # one row per point and metric (CER, WER); one for the failed point
    assert "failed" in rows[4].get("class") and "must be >= 1" in rows[4].text_content()
    for row, point in zip(rows[0:4:2], table["points"]):
        cer = point["datasets"]["lines"]["metrics"]["cer"]
        assert point["name"] in row.text_content() and "CER" in row.text_content()
        assert f"{cer['tuned']:.2%}" in row.text_content() and f"{cer['base']:.2%}" in row.text_content()
        assert f"{point['trainable_parameters']:,}" in row.text_content()


def test_report_of_several_runs_compares_what_differs(swept, tmp_path):
    sweep_dir, _ = swept
    runs = [str(sweep_dir / "sweep-tuning.lora.r-2"), str(sweep_dir / "sweep-tuning.lora.r-4")]
    target, _ = build_report(runs, tmp_path / "compare.html")
    text = _dom(target).text_content()
    assert "tuning.lora.r=2" in text and "tuning.lora.r=4" in text
    assert "train.learning_rate" not in text.split("Ablation")[1].split("sweep-tuning.lora.r-2")[1][:200]


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def test_report_in_headless_chromium(swept, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium); the lxml DOM tests above still ran")
    sweep_dir, table = swept
    point_dir = sweep_dir / "sweep-tuning.lora.r-2"
    main(["report", str(point_dir), "--output", str(tmp_path / "report.html")])
    url = (tmp_path / "report.html").as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1280,2000", f"--screenshot={shot}", url], capture_output=True,
                   timeout=120, check=True)
    with Image.open(shot) as image:
        extrema = image.convert("L").getextrema()
    assert extrema[0] < extrema[1] - 100, "the screenshot is blank"
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    rendered = lxml.html.fromstring(dom)
    cer = table["points"][0]["datasets"]["lines"]["metrics"]["cer"]
    assert f"{cer['tuned']:.2%}" in rendered.text_content()
    assert rendered.xpath("//span[contains(@class,'diff-sub') or contains(@class,'diff-ins') "
                          "or contains(@class,'diff-del')]")


# --------------------------------------------------------------------------------------------
# Predict's timing line, and exports of full runs / interpolations


def test_predict_prints_throughput_and_cost(swept, capsys):
    sweep_dir, _ = swept
    run = sweep_dir / "sweep-tuning.lora.r-2"
    output = run / "predictions" / "timed.jsonl"
    assert main(["--quiet", "predict", str(run), "--split", "test", "--output", str(output),
                 "--price-per-hour", "2.5"]) == 0
    printed = capsys.readouterr().out
    timing = json.loads((run / "predictions" / "timed.jsonl.timing.json").read_text())
    assert timing["samples"] == 6 and timing["batch_size"] == 3
    assert timing["cost_per_1000_images"] == pytest.approx(2.5 / 3600 * 1000 / timing["samples_per_second"])
    assert "samples/s" in printed and "ms/sample" in printed and "per 1000 images" in printed
    # The price may also come from the config; a negative one is refused.
    assert main(["--quiet", "predict", str(run), "--split", "test", "--output", str(output),
                 "--evaluate.price_per_hour", "3.6"]) == 0
    assert json.loads((run / "predictions" / "timed.jsonl.timing.json").read_text())["price_per_hour"] == 3.6
    assert main(["predict", str(run), "--split", "test", "--price-per-hour", "-1"]) == 2
    assert "--price-per-hour must be a finite number >= 0" in capsys.readouterr().err


def _weights(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


def test_export_of_a_full_run_and_wise_ft_interpolation(tiny_models, lines_dir, tmp_path):
    from docvlm.models.export import export_run
    from docvlm.models.loading import load_base, load_tuned
    from docvlm.train.trainer import run_training
    from transformers import AutoModelForImageTextToText

    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, "--tuning.method", "full",
                      "--train.max_steps", "2", "--train.eval_steps", "0", "--train.save_steps", "2")
    run_training(cfg)
    tuned, base = _weights(load_tuned(cfg.run_dir).model), _weights(load_base(cfg.model).model)
    export_run(cfg.run_dir, tmp_path / "full")
    exported = _weights(AutoModelForImageTextToText.from_pretrained(tmp_path / "full"))
    assert exported.keys() == tuned.keys() and all(torch.equal(exported[k], tuned[k]) for k in tuned)
    export_run(cfg.run_dir, tmp_path / "half", interpolate=0.5)
    half = _weights(AutoModelForImageTextToText.from_pretrained(tmp_path / "half"))
    changed = [k for k in tuned if not torch.equal(tuned[k], base[k])]
    assert changed
    for k in changed:
        assert torch.allclose(half[k], (base[k] + tuned[k]) / 2, atol=1e-6)
    with pytest.raises(ConfigError, match="not empty"):
        export_run(cfg.run_dir, tmp_path / "half", interpolate=0.5)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        export_run(cfg.run_dir, tmp_path / "other", interpolate=1.5)


def test_group_comparison_pairs_base_and_tuned_by_type():
    from docvlm.evaluate.groups import format_groups, group_comparison

    result = {"metrics": ["cer"], "analysis": {
        "base": {"groups": {"group": {"form": {"n": 3, "cer": 0.5}, "ledger": {"n": 2, "cer": 0.25}}}},
        "tuned": {"groups": {"group": {"form": {"n": 3, "cer": 0.125}, "ledger": {"n": 2, "cer": 0.375}}}}}}
    rows = group_comparison(result)
    assert [(r["value"], r["n"], r["base"], r["tuned"], r["delta"]) for r in rows] == [
        ("form", 3, 0.5, 0.125, -0.375), ("ledger", 2, 0.25, 0.375, 0.125)]
    text = format_groups("run / lines", result)
    assert "run / lines by group" in text and "-37.50%" in text and "+12.50%" in text
    single = {"metrics": ["cer"], "analysis": {"groups": {"group": {"form": {"n": 3, "cer": 0.5}}}}}
    assert group_comparison(single)[0]["base"] is None and format_groups("x", {"metrics": ["cer"]}) == ""


def test_compare_prints_performance_by_document_type(swept, capsys):
    sweep_dir, _ = swept
    runs = [str(sweep_dir / "sweep-tuning.lora.r-2"), str(sweep_dir / "sweep-tuning.lora.r-4")]
    assert main(["compare", *runs]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((sweep_dir / "sweep-tuning.lora.r-4" / "metrics" / "test.json").read_text())
    form = metrics["datasets"]["lines"]["analysis"]["tuned"]["groups"]["group"]["form"]["cer"]
    assert "sweep-tuning.lora.r-4 / lines by group" in printed and "ledger" in printed and f"{form:.2%}" in printed


def test_export_of_a_dora_run_answers_like_the_adapter(tiny_models, lines_dir, tmp_path):
    from docvlm.models.export import export_run
    from docvlm.models.loading import load_tuned
    from docvlm.models.prompting import ChatFormat, generate_answers
    from docvlm.train.trainer import run_training
    from test_families import _plain_transformers_answers, _test_samples

    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, "--tuning.method", "lora",
                      "--tuning.lora.use_dora", "true", "--tuning.lora.r", "4", "--tuning.lora.dropout", "0",
                      "--train.max_steps", "3", "--train.eval_steps", "0", "--train.save_steps", "3")
    run_training(cfg)
    export_run(cfg.run_dir, tmp_path / "merged")
    samples = _test_samples(cfg, lines_dir)
    loaded = load_tuned(cfg.run_dir)
    adapter = generate_answers(loaded.model, ChatFormat(loaded.processor, loaded.spec), samples, 6)
    assert _plain_transformers_answers(tmp_path / "merged", samples, cfg.data.datasets[0].prompt_for(),
                                       tmp_path) == adapter

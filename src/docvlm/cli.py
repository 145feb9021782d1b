"""The ``docvlm`` command: one subcommand per verb, each a thin call into a module.

Config values are overridden with ``--section.key value`` after the positional arguments, e.g.
``docvlm train configs/qwen2_vl/htr_lora.yaml --train.learning_rate 1e-4 --data.datasets.0.max_pixels 200000``.
A user mistake ends with one ``error:`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from docvlm.errors import DocVLMError, Interrupted

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("docvlm").setLevel(logging.INFO)
    if not verbose:
        # Library chatter (weight-loading bars, deprecation notes) hides the lines that matter;
        # the Trainer's own progress bar and loss lines stay.
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def cmd_train(args, overrides: list[str]) -> int:
    from docvlm.config import load_config
    from docvlm.train.trainer import run_training

    cfg = load_config(args.config, overrides)
    if args.force and not args.resume:
        raise DocVLMError("--force goes with --resume")
    summary = run_training(cfg, resume=args.resume, force=args.force)
    metric = summary.get("selection_metric")
    best = f"; best {metric}: {summary[f'best_{metric}']}" if metric else ""
    print(f"trained {summary['global_step']} steps in {summary['train_seconds']} s; "
          f"weights in {summary['saved_to']}{best}")
    for line in summary.get("counts", summary.get("skipped", {})).values():  # one line per split
        print(line)
    if not summary.get("skipped"):
        print("no sample skipped")
    return 0


def cmd_evaluate(args, overrides: list[str]) -> int:
    from docvlm.evaluate.scoring import format_summary, format_table

    if args.predictions:
        return _evaluate_predictions(args, overrides)
    if not args.run:
        raise DocVLMError("give a run folder, or --predictions FILE.jsonl --metric NAME")
    if args.metric or args.baseline or args.output or args.task or args.per_sample:
        raise DocVLMError("--metric, --task, --baseline, --output and --per-sample go with --predictions; a run "
                          "is scored with the metrics of each dataset's task")
    from docvlm.evaluate.run import evaluate_run
    from docvlm.runs import ensure_writable

    if Path(args.run).is_dir():
        for folder in ("predictions", "metrics"):
            ensure_writable(Path(args.run) / folder)
    from docvlm.predict.latency import format_latency

    results = evaluate_run(args.run, overrides, progress=not args.quiet, price_per_hour=args.price_per_hour)
    print(format_table(results))
    for result in results:
        summary = format_summary(result)
        if summary:
            print(summary)
        print(f"{result['dataset']}/{result['split']}: scored {result['n']} samples; "
              f"{result.get('skipped', 0)} skipped")
        print(f"{result['dataset']} tuned {format_latency(result['latency']['tuned'])}")
    print(f"metrics written to {Path(args.run) / 'metrics'}")
    return 0


def _evaluate_predictions(args, overrides: list[str]) -> int:
    from docvlm.config import load_config
    from docvlm.evaluate.scoring import evaluate_predictions, format_scores, format_summary, format_table
    from docvlm.runs import write_json

    if args.run:
        raise DocVLMError("give either a run folder or --predictions, not both")
    if args.price_per_hour is not None:
        raise DocVLMError("--price-per-hour goes with a run (its timings); a predictions file has none")
    if args.metric and args.task:
        raise DocVLMError("give --metric or --task, not both")
    cfg = load_config(None, overrides).evaluate
    from docvlm.runs import check_output_file

    inputs = [args.predictions, args.baseline]
    if args.output:
        check_output_file(args.output, "--output", inputs, "metrics.json")
    if args.per_sample:
        check_output_file(args.per_sample, "--per-sample", inputs + [args.output], "per_sample.jsonl")
    metrics = tuple(dict.fromkeys(args.metric)) if args.metric else None
    report = evaluate_predictions(args.predictions, metrics, cfg, baseline=args.baseline, task=args.task,
                                  per_sample=args.per_sample)
    result = next(iter(report["datasets"].values()))
    if metrics is None and args.task is None:
        print(f"scored as {report['task']} ({report['task_source']}; --task or --metric to choose)")
    print(format_table([result]) if args.baseline else format_scores(result))
    summary = format_summary(result)
    if summary:
        print(summary)
    if args.per_sample:
        print(f"per-sample scores written to {args.per_sample}")
    if args.output:
        write_json(args.output, report)
        print(f"metrics written to {args.output}")
    return 0


def cmd_compare(args, overrides: list[str]) -> int:
    from docvlm.evaluate.scoring import format_compare, load_run_metrics

    if overrides:
        raise DocVLMError("compare takes no config overrides")
    from docvlm.evaluate.groups import format_groups

    runs = [(Path(run).name, load_run_metrics(run, args.split)) for run in args.runs]
    print(format_compare(runs))
    for name, metrics in runs:  # performance by document type, per run
        for dataset, result in metrics["datasets"].items():
            table = format_groups(f"{name} / {dataset}", result)
            if table:
                print("\n" + table)
    return 0


def _refuse_page_flags(args) -> None:
    """The write-back flags mean nothing without PAGE/ALTO inputs: refused rather than ignored."""
    flags = [flag for flag, on in (("--replace", getattr(args, "replace", False)),
                                   ("--keep-words", getattr(args, "keep_words", False)),
                                   ("--alto-words", getattr(args, "alto_words", False))) if on]
    if flags:
        raise DocVLMError(f"{flags[0]} goes with PAGE-XML/ALTO inputs, and none was given")


def cmd_predict(args, overrides: list[str]) -> int:
    from docvlm.config import DataConfig, DatasetConfig, GenerationConfig
    from docvlm.data.schema import PixelBudget
    from docvlm.data.sources import load_role
    from docvlm.models.loading import is_run_dir, load_tuned
    from docvlm.models.prompting import ChatFormat, pixel_budget_of
    from docvlm.predict.run import (inputs_read, predict_samples, samples_from_inputs, skip_summary,
                                    write_predictions)
    from docvlm.predict.writers import is_layout_input
    from docvlm.runs import check_output_file, ensure_writable, load_run_config

    _check_predict_numbers(args)
    target = Path(args.model)
    cfg = load_run_config(target, overrides) if is_run_dir(target) else None
    output = Path(args.output) if args.output else (
        target / "predictions" / "predictions.jsonl" if cfg else Path("predictions.jsonl"))
    # Fail on an unwritable output before the model is loaded and every input is read.
    for folder in [output.parent] + ([Path(args.draw)] if args.draw else []):
        ensure_writable(folder)
    if not any(is_layout_input(Path(item)) for item in args.inputs):  # PAGE/ALTO: --output is a folder
        check_output_file(output, "--output", [*args.inputs, *_split_manifests(cfg)], "predictions.jsonl")
    loaded = load_tuned(args.model, cfg.model if cfg else None)
    # Default: the pixel budget saved with the weights, i.e. the one the model was trained with.
    saved = pixel_budget_of(loaded.processor, loaded.spec)
    budget = PixelBudget(args.min_pixels or saved.min_pixels, args.max_pixels or saved.max_pixels)
    generation = cfg.generation if cfg else None
    settings = generation or GenerationConfig()  # a bare model folder: the config's defaults
    batch_size = args.batch_size or settings.batch_size
    max_new_tokens = args.max_new_tokens or settings.max_new_tokens
    # A bare model folder starts from its family's generation defaults (Florence-2: 3 beams).
    num_beams = generation.num_beams if generation else loaded.spec.generation.get("num_beams", 1)
    prompt = args.prompt or (cfg.data.datasets[0].prompt_for() if cfg else
                             loaded.spec.default_prompt or DatasetConfig().prompt)
    ChatFormat(loaded.processor, loaded.spec).prompt_text(prompt)  # a task token for a chat model fails here
    if args.draw:
        from docvlm.predict.regions import region_task, region_tasks

        if region_task(loaded.processor, prompt) is None:
            raise DocVLMError(f"--draw needs a region task prompt ({', '.join(region_tasks(loaded.processor)) or 'a Florence-2 model'})"
                              f"; the prompt is {prompt!r}")
    on_bad = args.on_bad_sample or (cfg.data.on_bad_sample if cfg else "error")
    if args.split:
        if cfg is None:
            raise DocVLMError("--split needs a run folder (its config names the datasets)")
        if args.inputs:
            raise DocVLMError("give inputs or --split, not both")
        _refuse_page_flags(args)
        role = {"train": "train", "eval": "eval", "validation": "eval", "test": "test"}.get(args.split)
        if role is None:
            raise DocVLMError(f"--split must be train, eval or test, not '{args.split}'")
        # Every sample of the split once, even when training drew a weighted mixture.
        data = DataConfig(**{**cfg.data.__dict__, "on_bad_sample": on_bad, "mixture": "concat"})
        samples, _ = load_role(data, role)
        if samples is None:
            raise DocVLMError(f"no dataset of the run has a {args.split} split configured")
    else:
        if not args.inputs:
            raise DocVLMError("give image files, folders or .jsonl manifests to predict on, or --split")
        from docvlm.predict.writers import is_layout_input, run_predict_pages

        if getattr(args, "keep_words", False) and not getattr(args, "replace", False):
            raise DocVLMError("--keep-words goes with --replace (without it no line's text is replaced)")
        if any(is_layout_input(Path(item)) for item in args.inputs):  # PAGE/ALTO pages: written back
            if args.draw:
                raise DocVLMError("--draw goes with Florence-2 region tasks on images, not with PAGE/ALTO pages")
            return run_predict_pages(args, loaded, cfg, prompt, budget, batch_size, max_new_tokens, num_beams, on_bad,
                                     settings.max_batch_visual_tokens)
        _refuse_page_flags(args)
        samples = samples_from_inputs(args.inputs, prompt, budget, on_bad)
    from docvlm.predict.latency import finish_meter, start_meter

    meter, price = start_meter(batch_size, args.price_per_hour, cfg)
    rows = predict_samples(loaded, samples, batch_size, max_new_tokens, num_beams, draw_dir=args.draw,
                           progress=not args.quiet, meter=meter,
                           max_batch_visual_tokens=settings.max_batch_visual_tokens)
    write_predictions(rows, output)
    timing = finish_meter(meter, price, output.with_name(output.name + ".timing.json"))
    print(f"{len(rows)} predictions written to {output}; {inputs_read(skip_summary(samples))}")
    print(timing)
    return 0


def _check_predict_numbers(args) -> None:
    """predict's numeric flags: a 0 was taken for 'not given' (the run's value used instead), a
    negative batch size ran, and a negative --max-new-tokens ended in transformers' traceback."""
    for flag, value in (("--batch-size", args.batch_size), ("--max-new-tokens", args.max_new_tokens),
                        ("--min-pixels", args.min_pixels), ("--max-pixels", args.max_pixels)):
        if value is not None and value < 1:
            raise DocVLMError(f"{flag} must be >= 1, got {value}")
    if args.min_pixels and args.max_pixels and args.min_pixels > args.max_pixels:
        raise DocVLMError(f"--min-pixels ({args.min_pixels}) is above --max-pixels ({args.max_pixels})")


def _split_manifests(cfg) -> list[Path]:
    """The run's dataset files that ``predict --split`` reads (an --output must not replace them)."""
    if cfg is None:
        return []
    found = []
    for dataset in cfg.data.datasets:
        source = Path(dataset.source)
        found.append(source)
        splits = (dataset.train_split, dataset.eval_split, dataset.test_split)
        found += [source / f"{split}{suffix}" for split in splits if split for suffix in (".jsonl", ".csv")]
    return found


def _fractions(text: str, flag: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DocVLMError(f"{flag} takes comma-separated numbers, e.g. 0,0.25,0.5,0.75,1; got '{text}'") from None


def cmd_retention(args, overrides: list[str]) -> int:
    from docvlm.retention.run import RETENTION_FILE, format_retention, retention_run

    interpolate = _fractions(args.interpolate, "--interpolate") if args.interpolate else None
    report = retention_run(args.run, overrides, interpolate)
    print(format_retention(report))
    print(f"retention written to {Path(args.run) / 'metrics' / RETENTION_FILE}")
    return 0


def cmd_merge(args, overrides: list[str]) -> int:
    from docvlm.retention.interpolate import merge_adapters

    if overrides:
        raise DocVLMError("merge takes no config overrides")
    weights = _fractions(args.weights, "--weights")
    output = merge_adapters(args.run_a, args.run_b, weights, args.method, args.output, args.density)
    print(f"merged adapter ({args.method}, weights {weights}) written to {output}")
    return 0


def cmd_lab(args, overrides: list[str]) -> int:
    from docvlm.retention.lab import run_lab

    if overrides:
        raise DocVLMError("lab takes no config overrides")
    run_lab(args.output, quick=args.quick)
    return 0


def cmd_sweep(args, overrides: list[str]) -> int:
    from docvlm.sweep import format_table, run_sweep

    table = run_sweep(args.config, args.set, overrides, progress=not args.quiet, price_per_hour=args.price_per_hour,
                      say=print)
    print(format_table(table))
    # Failed points are in the table; the command fails only when no point trained at all.
    return 0 if any(point["status"] != "failed" for point in table["points"]) else 1


def cmd_report(args, overrides: list[str]) -> int:
    from docvlm.report.html import build_report

    if overrides:
        raise DocVLMError("report takes no config overrides (it reads what the runs wrote)")
    if args.output:
        from docvlm.runs import check_output_file

        check_output_file(args.output, "--output", [], "report.html")
    _, summary = build_report(args.runs, args.output)
    print(summary)
    return 0


def cmd_export(args, overrides: list[str]) -> int:
    from docvlm.models.export import export_run, format_summary

    if overrides:
        raise DocVLMError("export takes no config overrides (it exports the run as trained)")
    summary = export_run(args.run, args.output, dtype=args.dtype, interpolate=args.interpolate,
                         overwrite=args.overwrite, say=print, progress=not args.quiet)
    print(format_summary(summary))
    return 0


def cmd_demo(args, overrides: list[str]) -> int:
    from docvlm.demo import run_demo

    run_demo(output=args.output, family=args.family, overrides=overrides)
    return 0


def cmd_data(args, overrides: list[str]) -> int:
    from docvlm.config import load_config
    from docvlm.runs import check_output_file, ensure_writable

    cfg = load_config(args.config, overrides)
    if args.action == "export":
        from docvlm.data.export import export_data
        from docvlm.data.schema import count_line

        if not args.output:
            raise DocVLMError("data export needs --output FOLDER")
        ensure_writable(args.output)
        reports = export_data(cfg, Path(args.output), args.format)
        for label, report in reports.items():  # the one-line counts every command prints
            print(count_line(label, report))
        print(f"exported to {args.output} ({args.format})")
        return 0
    from docvlm.datacheck import format_summary, load_tokenizing, run_data_check

    output = Path(args.output) if args.output else cfg.run_dir / "data_check.json"
    check_output_file(output, "--output", [], "data_check.json")
    report = run_data_check(cfg, output, load_tokenizing(cfg))
    print(format_summary(report))
    print(f"report written to {output}")
    problems = any(report["leakage"][kind]["count"] for kind in ("exact", "perceptual", "pages")) or any(
        split["unreadable_images"] or split["target_length"]["over_limit"] or split["skipped"]
        for split in report["splits"].values())
    return 1 if args.strict and problems else 0


def cmd_config(args, overrides: list[str]) -> int:
    from docvlm.config import config_yaml, field_docs, load_config

    if args.action == "fields":
        for key, type_name, default, doc in field_docs():
            print(f"{key}  ({type_name}, default {default!r})\n    {doc}")
        return 0
    if args.action == "check" and not args.config:
        raise DocVLMError("config check needs a config file: docvlm config check CONFIG.yaml")
    # "show" prints a config as written even when it is not valid yet (demo.yaml's model folder
    # exists only once the demo has built it); "check" validates.
    cfg = load_config(args.config, overrides, check=args.action == "check")
    if args.action == "check":
        print(f"{args.config}: valid")
        return 0
    print(config_yaml(cfg), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from docvlm.evaluate.scoring import ALL_METRICS, TASK_METRICS

    parser = argparse.ArgumentParser(prog="docvlm", description=__doc__.splitlines()[0],
                                     epilog="Any config value can be overridden: --section.key value")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library messages too")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars (summaries are still printed)")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fine-tune a model as a config says; writes a run folder")
    train.add_argument("config", help="YAML config file")
    train.add_argument("--resume", action="store_true", help="continue from the run's last complete checkpoint")
    train.add_argument("--force", action="store_true",
                       help="with --resume: go on although schedule-changing settings differ from the saved config")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser(
        "evaluate", help="score the base and the tuned model of a run, or a predictions file",
        epilog="CER/WER of a row with only 'references' (no 'reference') use the first one; "
               "--evaluate.multi_reference best uses, per sample, the one with the fewest edits. VQAv2 accuracy "
               "follows vqaEval.py (--evaluate.vqa_normalization always: VLMEvalKit; lmms-eval); ChartQA relaxed "
               "accuracy strips nothing, as pix2struct (--evaluate.relaxed_strip prediction: as VLMEvalKit; true: both).")
    evaluate.add_argument("run", nargs="?", help="run folder written by 'docvlm train'")
    evaluate.add_argument("--predictions", help="score this predictions JSONL instead (any tool's)")
    evaluate.add_argument("--baseline", help="with --predictions: a baseline predictions JSONL on the same samples")
    evaluate.add_argument("--metric", action="append", choices=ALL_METRICS,
                          help="metric for --predictions (repeatable; default: the --task's metrics)")
    evaluate.add_argument("--task", choices=sorted(TASK_METRICS),
                          help="with --predictions and no --metric: score as this task (default: the rows' "
                               "'task' field; else transcription when every row has one reference; rows with "
                               "several references must name it)")
    evaluate.add_argument("--output", help="with --predictions: write the metrics JSON here")
    evaluate.add_argument("--per-sample", metavar="FILE",
                          help="with --predictions: write each sample's value of every metric (JSONL: id, "
                               "metric values; CER/WER also edits and reference length)")
    evaluate.add_argument("--price-per-hour", type=float, metavar="USD",
                          help="hourly price of the machine: the latency figures get a cost per 1000 images")
    evaluate.set_defaults(func=cmd_evaluate)

    compare = commands.add_parser("compare", help="one table of the evaluated metrics of several runs")
    compare.add_argument("runs", nargs="+", help="run folders evaluated with 'docvlm evaluate'")
    compare.add_argument("--split", default="test", choices=["test", "eval"], help="which metrics file to read")
    compare.set_defaults(func=cmd_compare)

    predict = commands.add_parser("predict", help="batched inference; writes predictions.jsonl")
    predict.add_argument("model", help="run folder, adapter folder, model folder or hub id")
    predict.add_argument("inputs", nargs="*", help="image files, folders of images, .jsonl manifests, or PAGE-XML/ALTO "
                                                   "files or folders (written back into copies under --output)")
    predict.add_argument("--split", help="predict a split (train/eval/test) of the run's dataset instead")
    predict.add_argument("--replace", action="store_true",
                         help="PAGE/ALTO inputs: overwrite a line's existing text instead of keeping it")
    predict.add_argument("--keep-words", action="store_true",
                         help="PAGE inputs with --replace: keep a replaced line's Word elements (default: removed, "
                              "their text described the old reading)")
    predict.add_argument("--alto-words", action="store_true",
                         help="ALTO inputs: one String per word with SP between (default: one String per line)")
    predict.add_argument("--output", help="predictions file (default: RUN/predictions/predictions.jsonl); for "
                         "PAGE/ALTO inputs an output folder (default: RUN/predictions/pages)")
    predict.add_argument("--batch-size", type=int, help="most images per generation batch (default: the run's generation.batch_size, or 32; a batch also closes at generation.max_batch_visual_tokens)")
    predict.add_argument("--max-new-tokens", type=int, help="longest answer")
    predict.add_argument("--prompt", help="instruction (default: the run's dataset prompt); Florence-2: a task "
                         "prompt such as '<OCR>', '<OD>', '<OCR_WITH_REGION>' or '<CAPTION_TO_PHRASE_GROUNDING>a cat'")
    predict.add_argument("--draw", help="folder for PNGs of the images with the boxes of a Florence-2 region task")
    predict.add_argument("--min-pixels", type=int, help="override the saved pixel budget")
    predict.add_argument("--max-pixels", type=int, help="override the saved pixel budget")
    predict.add_argument("--on-bad-sample", choices=["error", "skip"], help="unreadable inputs: stop or skip")
    predict.add_argument("--price-per-hour", type=float, metavar="USD",
                         help="hourly price of the machine: adds the cost per 1000 images to the timing")
    predict.set_defaults(func=cmd_predict)

    retention = commands.add_parser("retention", help="what fine-tuning cost the model's general abilities")
    retention.add_argument("run", help="run folder written by 'docvlm train' (with a retention: section)")
    retention.add_argument("--interpolate", help="WiSE-FT sweep, e.g. 0,0.25,0.5,0.75,1: score base + a * "
                           "(tuned - base) at each a and pick the best task score above the floor")
    retention.set_defaults(func=cmd_retention)

    merge = commands.add_parser("merge", help="merge the LoRA adapters of two runs (PEFT weighted adapters)")
    merge.add_argument("run_a", help="first LoRA run folder (its config is kept)")
    merge.add_argument("run_b", help="second LoRA run folder on the same base model")
    merge.add_argument("--weights", default="0.5,0.5", help="one weight per run, e.g. 0.7,0.3")
    merge.add_argument("--method", default="ties", help="linear, cat, ties, dare_ties, dare_linear, svd, magnitude_prune")
    merge.add_argument("--density", type=float, help="ties/dare: fraction of each adapter's weights kept (default 0.5)")
    merge.add_argument("--output", required=True, help="folder of the merged run")
    merge.set_defaults(func=cmd_merge)

    lab = commands.add_parser("lab", help="offline forgetting lab: tiny model, synthetic scenes and lines, "
                              "every mitigation compared")
    lab.add_argument("--output", default="runs/lab", help="folder for models, data, lab.json and lab.png")
    lab.add_argument("--quick", action="store_true", help="a reduced lab (tests, a first look)")
    lab.set_defaults(func=cmd_lab)

    sweep = commands.add_parser("sweep", help="train + evaluate every combination of --set values; ablation table")
    sweep.add_argument("config", help="YAML config file (its run_name names the sweep folder)")
    sweep.add_argument("--set", action="append", required=True, metavar="KEY=V1,V2",
                       help="a config key and its values, e.g. tuning.lora.r=8,16,32,64 (repeatable: cartesian product)")
    sweep.add_argument("--price-per-hour", type=float, metavar="USD", help="adds cost per 1000 images to each point")
    sweep.set_defaults(func=cmd_sweep)

    report = commands.add_parser("report", help="one self-contained HTML page of a run, a sweep, or several runs")
    report.add_argument("runs", nargs="+", help="run folders (or a sweep folder); several give a comparison page")
    report.add_argument("--output", help="HTML file (default: RUN/report.html; several runs: their parent folder)")
    report.set_defaults(func=cmd_report)

    export = commands.add_parser("export", help="merge a run's adapters into a standard transformers model folder")
    export.add_argument("run", help="run folder written by 'docvlm train'")
    export.add_argument("output", help="folder for the merged model (safetensors, config, processor, generation config)")
    export.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"],
                        help="weights' dtype (default: the run's model.dtype); QLoRA runs merge into the base at it")
    export.add_argument("--interpolate", type=float, metavar="A",
                        help="WiSE-FT: write base + A * (tuned - base), 0 <= A <= 1 (for LoRA: the adapter scaled by A)")
    export.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    export.set_defaults(func=cmd_export)

    demo = commands.add_parser("demo", help="offline end-to-end run: tiny model, synthetic lines")
    demo.add_argument("--output", default="runs/demo", help="folder for the model, data and run")
    demo.add_argument("--family", default="qwen2_vl",
                      help="model family of the tiny model (qwen2_vl, qwen2_5_vl, qwen3_vl, idefics2, idefics3, "
                           "smolvlm, florence2); fewer steps: --train.max_steps N")
    demo.set_defaults(func=cmd_demo)

    data = commands.add_parser("data", help="check a config's datasets, or export them as a manifest")
    data.add_argument("action", choices=["check", "export"])
    data.add_argument("config", help="YAML config file")
    data.add_argument("--output", help="check: report file (default RUN/data_check.json); export: folder")
    data.add_argument("--format", choices=["jsonl", "hf"], default="jsonl", help="export: manifest or datasets folder")
    data.add_argument("--strict", action="store_true",
                      help="check: exit 1 on leakage, unreadable images, skipped or over-long samples")
    data.set_defaults(func=cmd_data)

    config = commands.add_parser("config", help="show, check or document configs")
    config.add_argument("action", choices=["show", "check", "fields"])
    config.add_argument("config", nargs="?", help="YAML config file")
    config.set_defaults(func=cmd_config)
    return parser


TOP_LEVEL_KEYS = ("run_name", "output_root")


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate ``--section.key value`` overrides from the command's own arguments.

    Done before argparse so an override's value is never taken for a positional input.
    """
    rest, overrides, i = [], [], 0
    while i < len(argv):
        token = argv[i]
        name = token[2:].split("=", 1)[0] if token.startswith("--") else ""
        if name and ("." in name or name in TOP_LEVEL_KEYS):
            takes_next = "=" not in token and i + 1 < len(argv)
            overrides += argv[i:i + (2 if takes_next else 1)]
            i += 2 if takes_next else 1
        else:
            rest.append(token)
            i += 1
    return rest, overrides


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, overrides = split_overrides(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)} (config overrides look like --section.key value)")
    extra = overrides
    _setup_logging(args.verbose)
    if args.quiet:
        # tqdm reads TQDM_* variables as defaults: this silences every bar, the Trainer's included.
        os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args, extra)
    except Interrupted as error:
        print(f"interrupted: {error}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DocVLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        # A file that cannot be read or written (read-only folder, full disk): one line, no traceback.
        print(f"error: {_os_error(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        from docvlm.train.distributed import end_process_group

        end_process_group()


def _os_error(error: OSError) -> str:
    names = " -> ".join(str(name) for name in (error.filename, error.filename2) if name)
    return f"{names}: {error.strerror}" if names and error.strerror else str(error)


if __name__ == "__main__":
    sys.exit(main())

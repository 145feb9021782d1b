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

from docvlm.errors import DocVLMError

EXIT_USER_ERROR = 2


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
    summary = run_training(cfg, resume=args.resume)
    print(f"trained {summary['global_step']} steps in {summary['train_seconds']} s; "
          f"weights in {summary['saved_to']}; best eval CER: {summary['best_eval_cer']}")
    return 0


def cmd_evaluate(args, overrides: list[str]) -> int:
    from docvlm.evaluate.scoring import format_summary, format_table

    if args.predictions:
        return _evaluate_predictions(args, overrides)
    if not args.run:
        raise DocVLMError("give a run folder, or --predictions FILE.jsonl --metric NAME")
    if args.metric or args.baseline or args.output:
        raise DocVLMError("--metric, --baseline and --output go with --predictions; a run is scored "
                          "with the metrics of each dataset's task")
    from docvlm.evaluate.run import evaluate_run

    results = evaluate_run(args.run, overrides)
    print(format_table(results))
    for result in results:
        summary = format_summary(result)
        if summary:
            print(summary)
    print(f"metrics written to {Path(args.run) / 'metrics'}")
    return 0


def _evaluate_predictions(args, overrides: list[str]) -> int:
    from docvlm.config import load_config
    from docvlm.evaluate.scoring import TASK_METRICS, evaluate_predictions, format_scores, format_summary, format_table
    from docvlm.runs import write_json

    if args.run:
        raise DocVLMError("give either a run folder or --predictions, not both")
    cfg = load_config(None, overrides).evaluate
    metrics = tuple(dict.fromkeys(args.metric)) if args.metric else TASK_METRICS[args.task]
    report = evaluate_predictions(args.predictions, metrics, cfg, baseline=args.baseline)
    result = next(iter(report["datasets"].values()))
    print(format_table([result]) if args.baseline else format_scores(result))
    summary = format_summary(result)
    if summary:
        print(summary)
    if args.output:
        write_json(args.output, report)
        print(f"metrics written to {args.output}")
    return 0


def cmd_compare(args, overrides: list[str]) -> int:
    from docvlm.evaluate.scoring import format_compare, load_run_metrics

    if overrides:
        raise DocVLMError("compare takes no config overrides")
    runs = [(Path(run).name, load_run_metrics(run, args.split)) for run in args.runs]
    print(format_compare(runs))
    return 0


def cmd_predict(args, overrides: list[str]) -> int:
    from docvlm.config import DataConfig, DatasetConfig
    from docvlm.data.schema import PixelBudget
    from docvlm.data.sources import load_role
    from docvlm.models.loading import is_run_dir, load_tuned
    from docvlm.models.prompting import ChatFormat, pixel_budget_of
    from docvlm.predict.run import predict_samples, samples_from_inputs, skip_summary, write_predictions
    from docvlm.runs import load_run_config

    target = Path(args.model)
    cfg = load_run_config(target, overrides) if is_run_dir(target) else None
    loaded = load_tuned(args.model, cfg.model if cfg else None)
    # Default: the pixel budget saved with the weights, i.e. the one the model was trained with.
    saved = pixel_budget_of(loaded.processor, loaded.spec)
    budget = PixelBudget(args.min_pixels or saved.min_pixels, args.max_pixels or saved.max_pixels)
    generation = cfg.generation if cfg else None
    batch_size = args.batch_size or (generation.batch_size if generation else 8)
    max_new_tokens = args.max_new_tokens or (generation.max_new_tokens if generation else 256)
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
        samples = samples_from_inputs(args.inputs, prompt, budget, on_bad)
    rows = predict_samples(loaded, samples, batch_size, max_new_tokens, num_beams, draw_dir=args.draw)
    output = Path(args.output) if args.output else (
        target / "predictions" / "predictions.jsonl" if cfg else Path("predictions.jsonl"))
    write_predictions(rows, output)
    skipped = skip_summary(samples)["skipped_total"]
    print(f"{len(rows)} predictions written to {output}" + (f" ({skipped} inputs skipped)" if skipped else ""))
    return 0


def cmd_demo(args, overrides: list[str]) -> int:
    from docvlm.demo import run_demo

    run_demo(output=args.output, family=args.family, overrides=overrides)
    return 0


def cmd_data(args, overrides: list[str]) -> int:
    from docvlm.config import load_config

    cfg = load_config(args.config, overrides)
    if args.action == "export":
        from docvlm.data.export import export_data

        if not args.output:
            raise DocVLMError("data export needs --output FOLDER")
        reports = export_data(cfg, Path(args.output), args.format)
        for label, report in reports.items():
            skipped = f" ({report['skipped_total']} skipped: {report['skipped']})" if report["skipped_total"] else ""
            print(f"{label}: {report['kept']} samples{skipped}")
        print(f"exported to {args.output} ({args.format})")
        return 0
    from docvlm.datacheck import format_summary, load_tokenizing, run_data_check

    output = Path(args.output) if args.output else cfg.run_dir / "data_check.json"
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
    cfg = load_config(args.config, overrides)
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
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fine-tune a model as a config says; writes a run folder")
    train.add_argument("config", help="YAML config file")
    train.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("evaluate", help="score the base and the tuned model of a run, or a predictions file")
    evaluate.add_argument("run", nargs="?", help="run folder written by 'docvlm train'")
    evaluate.add_argument("--predictions", help="score this predictions JSONL instead (any tool's)")
    evaluate.add_argument("--baseline", help="with --predictions: a baseline predictions JSONL on the same samples")
    evaluate.add_argument("--metric", action="append", choices=ALL_METRICS,
                          help="metric for --predictions (repeatable; default: the --task's metrics)")
    evaluate.add_argument("--task", default="transcription", choices=sorted(TASK_METRICS),
                          help="with --predictions and no --metric: score as this task")
    evaluate.add_argument("--output", help="with --predictions: write the metrics JSON here")
    evaluate.set_defaults(func=cmd_evaluate)

    compare = commands.add_parser("compare", help="one table of the evaluated metrics of several runs")
    compare.add_argument("runs", nargs="+", help="run folders evaluated with 'docvlm evaluate'")
    compare.add_argument("--split", default="test", choices=["test", "eval"], help="which metrics file to read")
    compare.set_defaults(func=cmd_compare)

    predict = commands.add_parser("predict", help="batched inference; writes predictions.jsonl")
    predict.add_argument("model", help="run folder, adapter folder, model folder or hub id")
    predict.add_argument("inputs", nargs="*", help="image files, folders of images, or .jsonl manifests")
    predict.add_argument("--split", help="predict a split (train/eval/test) of the run's dataset instead")
    predict.add_argument("--output", help="predictions file (default: RUN/predictions/predictions.jsonl)")
    predict.add_argument("--batch-size", type=int, help="images per generation batch")
    predict.add_argument("--max-new-tokens", type=int, help="longest answer")
    predict.add_argument("--prompt", help="instruction (default: the run's dataset prompt); Florence-2: a task "
                         "prompt such as '<OCR>', '<OD>', '<OCR_WITH_REGION>' or '<CAPTION_TO_PHRASE_GROUNDING>a cat'")
    predict.add_argument("--draw", help="folder for PNGs of the images with the boxes of a Florence-2 region task")
    predict.add_argument("--min-pixels", type=int, help="override the saved pixel budget")
    predict.add_argument("--max-pixels", type=int, help="override the saved pixel budget")
    predict.add_argument("--on-bad-sample", choices=["error", "skip"], help="unreadable inputs: stop or skip")
    predict.set_defaults(func=cmd_predict)

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
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args, extra)
    except DocVLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

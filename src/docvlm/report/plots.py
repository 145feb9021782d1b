"""Training curves as inline SVG (matplotlib, Agg backend: no display, no files)."""

from __future__ import annotations

import io


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "path"  # glyphs as paths: the SVG needs no font from anywhere
    return plt


def training_curves(log: list[dict]) -> str | None:
    """Training loss and evaluation CER/WER (and eval loss) against the step; None without data."""
    train = [(e["step"], e["loss"]) for e in log if isinstance(e.get("loss"), (int, float))]
    evals = {key: [(e["step"], e[key]) for e in log if isinstance(e.get(key), (int, float))]
             for key in ("eval_loss", "eval_cer", "eval_wer")}
    if not train and not any(evals.values()):
        return None
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    if train:
        left.plot(*zip(*train), label="training loss", color="#1f77b4")
    if evals["eval_loss"]:
        left.plot(*zip(*evals["eval_loss"]), "o-", label="eval loss", color="#ff7f0e")
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend(loc="upper right")
    left.grid(alpha=0.3)
    for key, colour in (("eval_cer", "#d62728"), ("eval_wer", "#9467bd")):
        if evals[key]:
            steps, values = zip(*evals[key])
            right.plot(steps, [100 * v for v in values], "o-", label=key.replace("eval_", "eval ").upper(),
                       color=colour)
    right.set_xlabel("step")
    right.set_ylabel("%")
    right.set_title("generation-based error rate on the eval set", fontsize=9)
    if any(evals[k] for k in ("eval_cer", "eval_wer")):
        right.legend(loc="upper right")
    right.grid(alpha=0.3)
    figure.tight_layout()
    return _svg(plt, figure)


def _svg(plt, figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline SVG in HTML


def ablation_plot(entries: list[dict]) -> str | None:
    """The tuned model's first metric (with its interval) against the one swept setting, per
    dataset; None unless exactly one setting varies and its values are numbers."""
    keys = {key for e in entries for key in e.get("settings", {})}
    if len(keys) != 1:
        return None
    key = keys.pop()
    series: dict[tuple[str, str], list[tuple[float, float, list | None]]] = {}
    for entry in entries:
        try:
            x = float(entry["settings"][key])
        except (TypeError, ValueError):
            return None
        for dataset, figures in (entry.get("datasets") or {}).items():
            metric, values = next(iter(figures["metrics"].items()))
            if values.get("tuned") is not None:
                series.setdefault((dataset, metric), []).append((x, values["tuned"], values.get("tuned_ci")))
    if not series:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.2))
    for (dataset, metric), points in series.items():
        points.sort()
        xs, ys = [p[0] for p in points], [100 * p[1] for p in points]
        low = [100 * (p[1] - p[2][0]) if p[2] and p[2][0] is not None else 0 for p in points]
        high = [100 * (p[2][1] - p[1]) if p[2] and p[2][1] is not None else 0 for p in points]
        axis.errorbar(xs, ys, yerr=[low, high], fmt="o-", capsize=4, label=f"{dataset} {metric.upper()} (tuned)")
    xs = sorted({x for pts in series.values() for x, _, _ in pts})
    if all(x > 0 for x in xs) and max(xs) / min(xs) >= 8:  # ranks 8, 16, 32, 64: even steps on a log axis
        axis.set_xscale("log", base=2)
    axis.set_xticks(xs, [f"{x:g}" for x in xs])
    axis.minorticks_off()
    axis.set_xlabel(key)
    axis.set_ylabel("%")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return _svg(plt, figure)

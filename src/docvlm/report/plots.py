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

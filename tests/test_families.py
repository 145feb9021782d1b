"""One matrix over every model family: LoRA and full tuning for 3 steps, save -> reload,
batched = single predictions, and the family's image settings surviving the round trip."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from docvlm.data.schema import PixelBudget
from docvlm.models.families import FAMILIES
from docvlm.models.loading import load_base, load_tuned
from docvlm.models.prompting import ChatFormat, generate_answers
from docvlm.predict.run import predict_samples, samples_from_inputs
from docvlm.train.trainer import run_training

from conftest import FAMILIES as BUILT
from conftest import family_args, make_config

pytestmark = pytest.mark.slow

# A non-default image setting per family, set through the config; it must reach the saved processor.
OPTIONS: dict[str, tuple[tuple[str, ...], str, object]] = {
    # family: (overrides, image-processor attribute, expected value after reload)
    "qwen2_vl": (("--data.datasets.0.max_pixels", "2352"), "size", {"shortest_edge": 784, "longest_edge": 2352}),
    "qwen2_5_vl": (("--data.datasets.0.max_pixels", "2352"), "size", {"shortest_edge": 784, "longest_edge": 2352}),
    "qwen3_vl": (("--data.datasets.0.max_pixels", "3072", "--data.datasets.0.min_pixels", "1024"), "size",
                 {"shortest_edge": 1024, "longest_edge": 3072}),
    "idefics2": (("--model.processor_options", "{do_image_splitting: true}"), "do_image_splitting", True),
    "idefics3": (("--model.processor_options", "{do_image_splitting: false, size: {longest_edge: 64}}"),
                 "do_image_splitting", False),
    "smolvlm": (("--model.processor_options", "{do_image_splitting: false, size: {longest_edge: 64}}"),
                "do_image_splitting", False),
    "florence2": (("--model.processor_options", "{size: {height: 56, width: 112}}"), "size",
                  {"height": 56, "width": 112}),
}

STEPS = ("--train.max_steps", "3", "--train.eval_steps", "0", "--train.save_steps", "3")


def weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def plain(value):
    return {k: v for k, v in vars(value).items() if v is not None} if hasattr(value, "__dict__") else value


class PredictAtEnd(TrainerCallback):
    """Greedy answers of the in-memory model when training ends, before anything is saved."""

    def __init__(self, samples, spec):
        self.samples, self.spec, self.answers = samples, spec, None

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.answers = generate_answers(model, ChatFormat(processing_class, self.spec), self.samples, 6)


def test_matrix_covers_every_family():
    assert set(BUILT) == set(FAMILIES) == set(OPTIONS)


def _test_samples(cfg, lines_dir):
    dataset = cfg.data.datasets[0]
    budget = PixelBudget(dataset.min_pixels, dataset.max_pixels)
    samples = samples_from_inputs([str(lines_dir / "test.jsonl")], cfg.data.datasets[0].prompt_for(), budget, "error")
    return [samples[i] for i in range(len(samples))]


@pytest.fixture(scope="module", params=BUILT)
def lora_run(request, tiny_models, lines_dir, tmp_path_factory):
    family = request.param
    overrides, _, _ = OPTIONS[family]
    cfg = make_config(tmp_path_factory.mktemp(f"lora-{family}"), tiny_models[family], lines_dir,
                      *family_args(family), *overrides, *STEPS, "--tuning.method", "lora",
                      "--tuning.lora.r", "4", "--tuning.lora.dropout", "0")
    samples = _test_samples(cfg, lines_dir)
    at_end = PredictAtEnd(samples, FAMILIES[family])
    run_training(cfg, extra_callbacks=[at_end])
    return family, cfg, samples, at_end.answers


def test_lora_trains_adapters_of_unfrozen_parts_only(lora_run):
    family, cfg, _, _ = lora_run
    spec = FAMILIES[family]
    adapter = load_file(str(cfg.run_dir / "adapter" / "adapter_model.safetensors"))
    lora_b = [k for k in adapter if "lora_B" in k]
    assert lora_b and all(adapter[k].abs().sum() > 0 for k in lora_b)  # B starts at zero: every one trained
    assert {spec.component_of(k) for k in adapter} == {"language", "projector"}  # vision frozen by default
    before = weights(load_base(cfg.model).model)
    after = weights(load_tuned(cfg.run_dir).model.merge_and_unload())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert {spec.component_of(n) for n in changed} == {"language", "projector"}


def test_reloaded_run_predicts_like_the_trained_model(lora_run):
    _, cfg, samples, answers_at_end = lora_run
    reloaded = load_tuned(cfg.run_dir)
    assert generate_answers(reloaded.model, ChatFormat(reloaded.processor, reloaded.spec), samples, 6) == answers_at_end


def test_batched_and_single_predictions_agree(lora_run):
    _, cfg, samples, _ = lora_run
    loaded = load_tuned(cfg.run_dir)
    batched = predict_samples(loaded, samples, batch_size=6, max_new_tokens=6, progress=False)
    single = predict_samples(loaded, samples, batch_size=1, max_new_tokens=6, progress=False)
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in single]


def test_image_settings_survive_the_round_trip(lora_run):
    family, cfg, _, _ = lora_run
    _, attribute, expected = OPTIONS[family]
    for folder in (cfg.run_dir / "adapter", cfg.run_dir / "checkpoints" / "checkpoint-3"):
        saved = json.loads((folder / "processor_config.json").read_text())["image_processor"]
        assert {k: v for k, v in saved[attribute].items() if v is not None} == expected \
            if isinstance(expected, dict) else saved[attribute] == expected, folder
    assert plain(getattr(load_tuned(cfg.run_dir).processor.image_processor, attribute)) == expected


@pytest.mark.parametrize("family", BUILT)
def test_full_tuning_changes_every_trainable_weight_and_no_frozen_one(family, tiny_models, lines_dir, tmp_path):
    cfg = make_config(tmp_path, tiny_models[family], lines_dir, *family_args(family), *STEPS,
                      "--tuning.method", "full", "--tuning.freeze_vision", "true")
    run_training(cfg)
    spec = FAMILIES[family]
    base, tuned = weights(load_base(cfg.model).model), weights(load_tuned(cfg.run_dir).model)
    assert base.keys() == tuned.keys()
    unchanged = [n for n in base if spec.component_of(n) != "vision" and torch.equal(base[n], tuned[n])]
    changed_frozen = [n for n in base if spec.component_of(n) == "vision" and not torch.equal(base[n], tuned[n])]
    assert unchanged == [] and changed_frozen == []


def _plain_transformers_answers(model_dir, samples, prompt, tmp_path) -> list[str]:
    """Greedy answers of an exported folder, computed in a subprocess that never imports docvlm."""
    import subprocess
    import sys
    from pathlib import Path

    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"prompt": prompt, "images": [s.record.image_ref for s in samples],
                                  "max_new_tokens": 6}))
    script = Path(__file__).with_name("plain_generate.py")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(script), str(model_dir), str(inputs)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_export_merges_adapters_into_a_plain_transformers_model(lora_run, tmp_path):
    from docvlm.models.export import export_run

    family, cfg, samples, _ = lora_run
    out = tmp_path / "merged"
    summary = export_run(cfg.run_dir, out)
    assert summary["merged"] and summary["family"] == family
    assert (out / "model.safetensors").is_file() and (out / "generation_config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    reloaded = load_tuned(cfg.run_dir)
    adapter = generate_answers(reloaded.model, ChatFormat(reloaded.processor, reloaded.spec), samples, 6)
    plain_answers = _plain_transformers_answers(out, samples, cfg.data.datasets[0].prompt_for(), tmp_path)
    assert plain_answers == adapter
    _, attribute, expected = OPTIONS[family]  # the run's image settings travel with the export
    saved = json.loads((out / "processor_config.json").read_text())["image_processor"][attribute]
    assert ({k: v for k, v in saved.items() if v is not None} if isinstance(expected, dict) else saved) == expected


def test_tiny_idefics2_visual_tokens_differ_from_the_first_step(tiny_models):
    """transformers initialises the perceiver's latents to ones, which made all 16 visual tokens of
    a random Idefics2 one vector; the tiny builder aligns them with parts of the line, so each
    token sees the image its own way."""
    from PIL import Image

    from docvlm.config import ModelConfig
    from docvlm.models.loading import load_processor
    from transformers import AutoModelForImageTextToText

    path = str(tiny_models["idefics2"])
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = load_processor(path, ModelConfig())
    inputs = processor(text=["User:<image>x<end_of_utterance>\nAssistant:"],
                       images=[[Image.new("RGB", (224, 28), "white")]], return_tensors="pt")
    with torch.no_grad():
        tokens = model.model.get_image_features(inputs["pixel_values"], inputs["pixel_attention_mask"])
    tokens = tokens.pooler_output if hasattr(tokens, "pooler_output") else tokens
    tokens = tokens if torch.is_tensor(tokens) else tokens[0]
    assert tokens.reshape(-1, tokens.shape[-1]).std(dim=0).mean() > 0.1  # was 0.0: identical tokens


def test_tiny_idefics2_latents_start_on_their_own_part_of_the_line(tiny_models):
    """Each perceiver latent of the tiny Idefics2 starts by reading its own block of patch columns
    of a rendered digit line (with random latents the attention went to arbitrary patches or to the
    latents themselves: 1.9% on the latent's own block)."""
    import random

    from transformers import AutoModelForImageTextToText, AutoProcessor

    from docvlm.data.synthetic import LineStyle, find_fonts, render_line

    path = str(tiny_models["idefics2"])
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    rng = random.Random(0)
    style = LineStyle(cell_width=28)
    lines = [[render_line(text, rng, style, find_fonts())] for text in ("604876", "51375", "9450", "123")]
    pixels = processor.image_processor(lines, return_tensors="pt")["pixel_values"][:, 0]
    resampler = model.model.connector.perceiver_resampler
    layer, attention = resampler.layers[0], resampler.layers[0].self_attn
    with torch.no_grad():
        context = model.model.connector.modality_projection(model.model.vision_model(pixel_values=pixels)
                                                            .last_hidden_state)
        latents = layer.input_latents_norm(resampler.latents).expand(len(lines), -1, -1)
        keys = attention.k_proj(torch.cat([layer.input_context_norm(context), latents], dim=1))
        queries = attention.q_proj(latents[0]).view(resampler.n_latents, attention.num_heads, -1)
        keys = keys.view(len(lines), keys.shape[1], attention.num_key_value_heads, -1)
        keys = keys.repeat_interleave(attention.num_key_value_groups, dim=2)
        weights = (torch.einsum("lhd,bphd->bhlp", queries, keys) * attention.scaling).softmax(-1)
    patches = context.shape[1]
    rows = 28 // model.config.vision_config.patch_size
    per_block = weights[..., :patches].reshape(*weights.shape[:3], rows, resampler.n_latents, -1).sum((3, 5))
    own = per_block.diagonal(dim1=2, dim2=3)  # image, head, latent
    assert own.mean() > 0.6  # about 1 / n_latents when the latents are random
    # The perceiver's MLP starts at zero: a random one outweighs the attention output and scrambles it.
    assert not layer.mlp.down_proj.weight.any()

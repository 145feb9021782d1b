"""The loss seam: answer-only logits equal the model's own full-logits loss, for every family."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from docvlm.config import ModelConfig, TuningConfig
from docvlm.errors import ConfigError
from docvlm.models.loading import load_base, prepare_for_training
from docvlm.models.prompting import ChatFormat, TrainingCollator
from docvlm.train.losses import IGNORE_INDEX, LossContext, answer_logits, labelled_positions
from docvlm.train.trainer import run_training

from conftest import FAMILIES, make_config
from test_masking import family_samples


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _assert_same_grads(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-7, msg=name)


def _family_batch(path: str, lora: bool = False):
    loaded = load_base(ModelConfig(name_or_path=path, dtype="fp32"), TuningConfig(method="lora") if lora else None)
    model = prepare_for_training(loaded, TuningConfig(method="lora"), False) if lora else loaded.model
    model.eval()  # no dropout: both paths must see the same network
    samples = family_samples(loaded.spec)
    return model, TrainingCollator(ChatFormat(loaded.processor, loaded.spec)), samples


def _context(found: dict, labels, count) -> LossContext:
    return LossContext(model=None, inputs={}, labels=labels, mask=found["mask"], hidden=found["hidden"],
                       logits=found["logits"], targets=found["targets"], num_items_in_batch=count,
                       normalise_by_items=count is not None)


@pytest.mark.parametrize("family", FAMILIES)
def test_answer_only_loss_and_gradients_equal_full_logits(tiny_models, family):
    model, collate, samples = _family_batch(str(tiny_models[family]))
    batch = collate(samples)
    model(**batch).loss.backward()
    expected = _grads(model)
    full_loss = model(**batch).loss.detach()

    inputs = dict(batch)
    labels = inputs.pop("labels")
    found = answer_logits(model, inputs, labels)
    n_labels = int((labels != IGNORE_INDEX).sum())
    # Only labelled positions reach the head: one row per label, the whole vocabulary wide.
    assert found["logits"].shape == (n_labels, model.get_output_embeddings().out_features)
    assert found["logits"].dtype == torch.float32 and found["hidden"].shape[0] == n_labels
    loss = F.cross_entropy(found["logits"], found["targets"])
    torch.testing.assert_close(loss.detach(), full_loss, rtol=1e-5, atol=1e-6)
    loss.backward()
    _assert_same_grads(expected, _grads(model))


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_accumulation_matches_model_loss_with_token_count(tiny_models, family):
    """Two micro-batches normalised by the token count of both, as the Trainer does with
    num_items_in_batch: summed gradients equal those of the model's own loss."""
    model, collate, samples = _family_batch(str(tiny_models[family]))
    micro = [collate(samples[:1]), collate(samples[1:])]
    shifts = 0 if model.config.is_encoder_decoder else 1
    count = sum(int((b["labels"][:, shifts:] != IGNORE_INDEX).sum()) for b in micro)
    expected_total = 0.0
    for batch in micro:
        loss = model(**batch, num_items_in_batch=torch.tensor(count)).loss
        loss.backward()
        expected_total += loss.item()
    expected = _grads(model)

    total = 0.0
    for batch in micro:
        inputs = dict(batch)
        labels = inputs.pop("labels")
        ctx = _context(answer_logits(model, inputs, labels), labels, torch.tensor(count))
        loss = ctx.token_mean(F.cross_entropy(ctx.logits, ctx.targets, reduction="none"))
        loss.backward()
        total += loss.item()
    assert total == pytest.approx(expected_total, rel=1e-5)
    _assert_same_grads(expected, _grads(model))


def test_lora_model_goes_through_its_adapters(tiny_models):
    model, collate, samples = _family_batch(str(tiny_models["qwen2_vl"]), lora=True)
    batch = collate(samples)
    model(**batch).loss.backward()
    expected = _grads(model)
    assert expected and all("lora_" in name for name in expected)
    inputs = dict(batch)
    labels = inputs.pop("labels")
    found = answer_logits(model, inputs, labels)
    F.cross_entropy(found["logits"], found["targets"]).backward()
    _assert_same_grads(expected, _grads(model))


def test_labelled_positions_shift_for_causal_models_only():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, -100, -100, -100]])
    mask, targets = labelled_positions(labels, seq2seq=False)
    assert mask.nonzero().tolist() == [[0, 1], [0, 2], [1, 0]]
    assert targets.tolist() == [5, 6, 7]
    mask, targets = labelled_positions(labels, seq2seq=True)
    assert mask.nonzero().tolist() == [[0, 2], [0, 3], [1, 1]]
    assert targets.tolist() == [5, 6, 7]


def test_reference_logits_without_a_reference_is_a_clear_error():
    ctx = LossContext(model=None, inputs={}, labels=torch.zeros(1, 1), mask=torch.zeros(1, 1, dtype=torch.bool),
                      hidden=torch.zeros(0, 2), logits=torch.zeros(0, 3), targets=torch.zeros(0, dtype=torch.long),
                      num_items_in_batch=None, normalise_by_items=False)
    with pytest.raises(ConfigError, match="no reference model"):
        ctx.reference_logits()
    calls = []
    ctx.reference = lambda c: calls.append(1) or torch.ones(0, 3)
    assert ctx.reference_logits() is ctx.reference_logits() and calls == [1]  # computed once per batch


def _log_entries(run_dir) -> list[dict]:
    lines = (run_dir / "logs" / "train_log.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if "loss" in e]


@pytest.mark.parametrize("family,method", [("qwen2_vl", "lora"), ("florence2", "full")])
def test_training_curve_equals_the_full_logits_path(tiny_models, lines_dir, tmp_path, family, method):
    """Same config, gradient accumulation 2, one run per path: equal loss curves and weights."""
    from conftest import family_args

    runs = {}
    for answer_only in (True, False):
        cfg = make_config(tmp_path, tiny_models[family], lines_dir, *family_args(family),
                          "--run_name", f"answer_only_{answer_only}", "--tuning.method", method,
                          "--train.batch_size", "2", "--train.gradient_accumulation_steps", "2",
                          "--train.eval_steps", "0", "--train.save_steps", "10", "--train.max_steps", "3",
                          "--train.report_to", "[none]", "--train.answer_only_logits", str(answer_only).lower())
        run_training(cfg)
        runs[answer_only] = cfg.run_dir
    fast, full = (_log_entries(runs[k]) for k in (True, False))
    assert len(fast) == len(full) == 3
    for a, b in zip(fast, full):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        # The task term is logged apart and, alone, is the whole loss.
        assert a["loss_task"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["loss_task"] == pytest.approx(b["loss"], rel=1e-5)
    folder = "adapter" if method == "lora" else "model"
    weights = [load_file(str(next((runs[k] / folder).glob("*.safetensors")))) for k in (True, False)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_dataset_role_and_trainer_args_are_validated():
    from docvlm.config import load_config

    assert load_config(None, ["--data.datasets.0.role", "replay"]).data.datasets[0].role == "replay"
    with pytest.raises(ConfigError, match=r"data\.datasets\.0\.role': 'general' is not one of"):
        load_config(None, ["--data.datasets.0.role", "general"])
    cfg = load_config(None, ["--train.trainer_args", "{ddp_find_unused_parameters: false}"])
    assert cfg.train.trainer_args == {"ddp_find_unused_parameters": False}
    with pytest.raises(ConfigError, match=r"train\.trainer_args\.ddp_find_unused_parameter': not a transformers"):
        load_config(None, ["--train.trainer_args", "{ddp_find_unused_parameter: false}"])
    with pytest.raises(ConfigError, match=r"train\.trainer_args\.learning_rate': set by docvlm from train"):
        load_config(None, ["--train.trainer_args", "{learning_rate: 0.1}"])


def test_trainer_args_reach_the_trainer_and_reserved_keys_are_the_ones_docvlm_sets(tmp_path):
    import inspect

    from docvlm.config import TRAINER_ARGS_SET_BY_DOCVLM, load_config
    from docvlm.train import trainer

    cfg = load_config(None, ["--train.trainer_args", "{ddp_find_unused_parameters: false, logging_first_step: true}",
                             "--output_root", str(tmp_path)])
    args = trainer.training_arguments(cfg, tmp_path / "run", evaluating=False)
    assert args.ddp_find_unused_parameters is False and args.logging_first_step is True
    source = inspect.getsource(trainer.training_arguments)
    set_here = {line.strip().split("=")[0] for line in source.splitlines()
                if line.startswith("        ") and "=" in line and line.strip().split("=")[0].isidentifier()}
    assert set_here - {"evaluating", "on_gpu", "dtype", "bf16", "t"} <= set(TRAINER_ARGS_SET_BY_DOCVLM)


def test_flop_count_is_the_trainers_own_with_the_parameter_count_taken_once(tiny_models):
    from types import SimpleNamespace

    from transformers import Trainer

    from docvlm.train.trainer import DocVLMTrainer

    loaded = load_base(ModelConfig(name_or_path=str(tiny_models["qwen2_vl"]), dtype="fp32"))
    host = SimpleNamespace(model=loaded.model)
    for length in (7, 19):
        inputs = {"input_ids": torch.zeros(3, length, dtype=torch.long)}
        assert DocVLMTrainer.floating_point_ops(host, inputs) == Trainer.floating_point_ops(host, inputs) > 0
    assert host._flop_parameters == loaded.model.num_parameters(exclude_embeddings=True)
    assert DocVLMTrainer.floating_point_ops(host, {"pixel_values": torch.zeros(1)}) == 0


@pytest.mark.parametrize("family", ["qwen2_vl", "florence2"])
def test_retention_log_probs_equal_the_full_logits(tiny_models, family):
    # Retention scores answers with the head run at the labelled positions only; the values are
    # those of the model's full logits, shifted for a decoder-only model, aligned for Florence-2.
    from docvlm.retention.likelihood import labelled_log_probs

    loaded = load_base(ModelConfig(name_or_path=str(tiny_models[family]), dtype="fp32"))
    batch = TrainingCollator(ChatFormat(loaded.processor, loaded.spec))(family_samples(loaded.spec))
    log_probs, targets, rows = labelled_log_probs(loaded.model, batch)
    labels = batch["labels"]
    with torch.no_grad():
        logits = loaded.model(**batch).logits  # Florence-2 builds its decoder inputs from the labels
    if family == "qwen2_vl":
        logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != IGNORE_INDEX
    torch.testing.assert_close(log_probs, torch.log_softmax(logits[mask].float(), dim=-1), rtol=1e-5, atol=1e-5)
    assert torch.equal(targets, labels[mask])
    assert torch.equal(rows, torch.arange(labels.shape[0])[:, None].expand_as(labels)[mask])
    assert rows.unique().tolist() == [0, 1, 2]

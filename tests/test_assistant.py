"""Chapter 06's customer-service pieces: answer-only fine-tuning batches, the reading
exercises, fine-tuning leaves the base alone, and the whole table on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from aigc_course.models.gpt import GPT, GPTConfig
from aigc_course.text.support import CHARACTERS, MAX_CHARS, format_example, make_support_set
from aigc_course.text.support import reading_examples as exercises
from aigc_course.text.tokenizers import CharTokenizer
from aigc_course.train import assistant
from aigc_course.train.gpt import GPTTrainConfig, LanguageModel, example_batches


def test_example_batches_score_the_answer_only() -> None:
    examples = [torch.tensor([5, 6, 7, 8, 9]), torch.tensor([1, 2, 3])]
    prompts = [3, 2]                                     # answers: [8, 9] and [3]
    x, y = example_batches(examples, prompts, 64, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (64, 4)
    for row in range(64):
        if x[row, 0] == 5:
            assert x[row].tolist() == [5, 6, 7, 8] and y[row].tolist() == [-1, -1, 8, 9]
        else:
            assert x[row].tolist() == [1, 2, 0, 0] and y[row].tolist() == [-1, 3, -1, -1]


def test_reading_examples_cannot_be_memorised() -> None:
    """Fresh values each time: the same product's colour differs between exercises, and
    every answer is copied from its own passage."""
    rows = exercises(400, seed=0)
    assert rows == exercises(400, seed=0) and rows != exercises(400, seed=1)
    for context, question, answer in rows:
        assert answer in context
        assert len(format_example(question, answer, context)) <= MAX_CHARS
        assert set(format_example(question, answer, context)) <= set(CHARACTERS)
    colours: dict[str, set[str]] = {}
    for context, question, answer in rows:
        if "colour" in question or "color" in question.lower():
            colours.setdefault(context.split(":")[0], set()).add(answer)
    assert any(len(v) > 1 for v in colours.values())
    held_out = {qa.question.replace(qa.product or "", "{p}")
                for qa in make_support_set().held_out}
    assert not {q for _, q, _ in rows} & held_out          # no held-out wording


def _tiny_base() -> LanguageModel:
    tokenizer = CharTokenizer.fit(CHARACTERS)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=MAX_CHARS, n_layer=1,
                        n_head=2, n_embd=16))
    return LanguageModel(gpt.eval(), tokenizer)


def test_finetune_copies_and_leaves_the_base_alone() -> None:
    base = _tiny_base()
    before = {k: v.clone() for k, v in base.gpt.state_dict().items()}
    config = GPTTrainConfig(steps=3, batch_size=4, lr=1e-3, warmup=1, eval_every=0,
                            progress=False)
    tuned = assistant.finetune(base, [("Q: a?\nA: ", "b\n")] * 4, config)
    assert all(torch.equal(v, base.gpt.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(v, tuned.gpt.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="exceed the context"):
        assistant.finetune(base, [("x" * 300, "y\n")], config)


def test_customer_service_table_on_a_tiny_model() -> None:
    base = _tiny_base()
    support = make_support_set(0)
    config = GPTTrainConfig(steps=2, batch_size=4, lr=1e-3, warmup=1, eval_every=0,
                            progress=False)
    result = assistant.customer_service(base, support, config, max_questions=6, reading=10,
                                        max_answer_tokens=4)
    rows = {(r["questions"], r["setup"]): r for r in result["table"]}
    assert len(rows) == 6 and result["threshold"] > 0
    for (_, setup), row in rows.items():
        assert 0 <= row["em"] <= 1
        assert math.isnan(row["retrieval_accuracy"]) == (setup == "closed book")
    answers = assistant.example_answers(result, n=3)
    assert len(answers) == 3 and set(answers[0]) == {"question", "gold", *assistant.SETUPS}

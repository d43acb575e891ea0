"""Customer service in miniature: a pretrained GPT fine-tuned to answer, with and without
retrieval, and a hand-over rule.

The seed's first application of large models, intelligent customer service, built from
the chapter's parts (the retrieval-augmented generation of Lewis et al. 2020, in a few
lines): the knowledge base and questions of :mod:`aigc_course.text.support`, a BM25
index over its passages (:mod:`aigc_course.text.retrieval`), and the GPT of
:mod:`aigc_course.train.gpt` fine-tuned on the training questions in two ways:

* **closed book** -- trained on ``Q: ... A: ...``; it can only answer from what it
  memorised, and the held-out questions ask about facts it never saw;
* **with retrieval** -- trained on ``Context: <the passage> Q: ... A: ...``, plus
  synthetic reading exercises whose passages carry freshly drawn values
  (:func:`~aigc_course.text.support.reading_examples`: memorising cannot answer them, so
  the model learns to copy from the passage); at test time the context is the passage
  BM25 ranks first.

:func:`customer_service` scores both on the held-out and out-of-scope questions (exact
match and F1 as SQuAD), and the retrieval model a third time behind the hand-over rule
(answer only when the best BM25 score reaches a threshold set on the training
questions), with the false-answer rate a business would watch.

Simplified: greedy decoding of at most ``max_answer_tokens`` tokens up to the first
newline; one passage of context; whole examples per batch, padded, the loss on the
answer's tokens only.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import torch

from aigc_course.text.support import (
    SupportSet,
    choose_threshold,
    evaluate_answers,
    reading_examples,
    top_scores,
)
from aigc_course.text.support import format_example as format_qa
from aigc_course.train.gpt import (
    GPTTrainConfig,
    LanguageModel,
    example_batches,
    fit,
    token_chars,
)
from aigc_course.utils import Timer, seeded

#: the rows of :func:`customer_service`'s table, in order
SETUPS = ("closed book", "retrieval (BM25 top-1)", "retrieval + hand-over")


def finetune(base: LanguageModel, examples: list[tuple[str, str]], config: GPTTrainConfig
             ) -> LanguageModel:
    """A copy of ``base`` trained further on ``(prompt, answer)`` pairs (the base is left as
    it was), the loss on the answers only (:func:`~aigc_course.train.gpt.example_batches`).

    Raises:
        ValueError: characters the base's vocabulary lacks, or an example longer than
            its context.
    """
    # the whole block: a base pretrained on shorter windows learns the longer positions here
    model = LanguageModel(copy.deepcopy(base.gpt).to(config.device), base.tokenizer,
                          dict(base.info), context=base.config.block_size)
    encoded = [(model.encode(prompt), model.encode(answer)) for prompt, answer in examples]
    block = model.config.block_size
    too_long = [i for i, (p, a) in enumerate(encoded) if len(p) + len(a) > block]
    if too_long:
        raise ValueError(f"{len(too_long)} examples exceed the context of "
                         f"{model.config.block_size} tokens")
    ids = [torch.cat([p, a]) for p, a in encoded]
    lengths = [len(p) for p, _ in encoded]
    text = torch.cat(ids[:8])
    with seeded(config.seed) as generator:
        history = fit(model.gpt, text, text, token_chars(base.tokenizer), config, generator,
                      batches=lambda g: example_batches(ids, lengths, config.batch_size, g))
    model.gpt.cpu()
    model.info["finetune"] = {"steps": config.steps, "final_loss": history["loss"][-1]}
    return model


def training_examples(support: SupportSet, with_context: bool, reading: int = 0,
                      seed: int = 0, chunks: bool = False) -> list[tuple[str, str]]:
    """The ``(prompt, answer)`` pairs of the training questions; the answer ends with a
    newline (where :func:`answerer` stops), the prompt holds the gold passage if
    ``with_context``, and ``reading`` synthetic reading exercises
    (:func:`~aigc_course.text.support.reading_examples`) are added."""
    pairs = [(format_qa(qa.question, None,
                        support.passage(qa.passage_id).text
                        if with_context and qa.passage_id else None), qa.answer + "\n")
             for qa in support.train]
    pairs += [(format_qa(question, None, context), answer + "\n")
              for context, question, answer in reading_examples(reading, seed, chunks)]
    return pairs


def answerer(model: LanguageModel, max_answer_tokens: int = 24
             ) -> Callable[[str, str | None], str]:
    """``(question, context) -> answer``: greedy continuation of the prompt to a newline."""

    @functools.cache
    def answer(question: str, context: str | None) -> str:
        prompt = format_qa(question, None, context)
        ids = model.sample(1, prompt=prompt, max_new_tokens=max_answer_tokens, temperature=0)
        text = model.tokenizer.decode(ids[0, -max_answer_tokens:].tolist())
        return text.split("\n", 1)[0].strip()

    return answer


def customer_service(base: LanguageModel, support: SupportSet, config: GPTTrainConfig,
                     keep: float = 0.95, max_answer_tokens: int = 24,
                     max_questions: int | None = None, reading: int = 2000
                     ) -> dict[str, Any]:
    """Fine-tune ``base`` closed-book and with retrieval; score both on held-out questions.

    Args:
        base: the pretrained model (its vocabulary must cover the support set's
            characters; its ``block_size`` should hold a formatted example, 256).
        support: the knowledge base and questions.
        config: the fine-tuning run of each model.
        keep: the share of in-scope training questions the hand-over threshold answers.
        max_answer_tokens: the longest answer.
        max_questions: answer at most this many of each question set (``None``: all).
        reading: synthetic reading exercises added to the retrieval model's fine-tuning
            (new values each time, so it learns to copy from the passage instead of
            memorising the training facts).

    Returns:
        ``table``: one row per question set (``"new facts"``: the held-out facts in a
        training template's words; ``"new facts, new wording"``: in held-out templates'
        words; both with the out-of-scope questions) and :data:`SETUPS` entry: EM, F1,
        answered rate, hand-over rate of out-of-scope questions, false-answer rate,
        retrieval accuracy; ``threshold``; ``rows`` (per question set and setup, each
        question's result); ``models``; ``seconds`` of fine-tuning.
    """
    missing = sorted(set(support.characters()) - set(base.tokenizer.decode(
        range(base.tokenizer.vocab_size))))
    if base.tokenizer.name == "char" and missing:
        raise ValueError(f"the base model's vocabulary lacks {missing}: pretrain it on a "
                         "text that contains them")
    with Timer() as timer:
        closed = finetune(base, training_examples(support, False), config)
        reader = finetune(base, training_examples(support, True, reading, config.seed,
                                                  support.chunks), config)
    retriever = support.retriever()
    threshold = choose_threshold(top_scores(support.train, retriever), keep=keep)
    answer_closed = answerer(closed, max_answer_tokens)
    answer_reader = answerer(reader, max_answer_tokens)
    columns = ("em", "f1", "answered_rate", "hand_over_rate_out_of_scope",
               "false_answer_rate", "retrieval_accuracy")
    tables, rows = {}, {}
    for name, asked in (("new facts", support.unseen_facts),
                        ("new facts, new wording", support.held_out)):
        questions = asked[:max_questions] + support.out_of_scope[:max_questions]
        results = {
            SETUPS[0]: evaluate_answers(questions, answer_closed),
            SETUPS[1]: evaluate_answers(questions, answer_reader, retriever, support.passages),
            SETUPS[2]: evaluate_answers(questions, answer_reader, retriever, support.passages,
                                        hand_over_below=threshold),
        }
        tables[name] = [{"questions": name, "setup": setup, **{c: r[c] for c in columns}}
                        for setup, r in results.items()]
        rows[name] = {setup: r["rows"] for setup, r in results.items()}
    return {"table": tables["new facts"] + tables["new facts, new wording"],
            "threshold": threshold, "seconds": timer.seconds, "rows": rows,
            "models": {"closed book": closed, "retrieval": reader}}


def example_answers(result: dict[str, Any], questions: str = "new facts", n: int = 5
                    ) -> list[dict[str, Any]]:
    """The first ``n`` questions of a question set with each setup's answer, for a table."""
    rows = result["rows"][questions]
    names = list(rows)
    return [{"question": row["question"], "gold": row["gold"],
             **{name: rows[name][i]["prediction"] or "(hands over)" for name in names}}
            for i, row in enumerate(rows[names[0]][:n])]

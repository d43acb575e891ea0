"""A generated customer-service set: the seed's §6.1 intelligent customer service in miniature.

*Little Owl Homeware* is a **fictional** online shop (its e-mail lives under the reserved
``.example`` domain). :func:`make_support_set` generates, from a seed, its knowledge base,
one short :class:`Passage` per product plus four policy passages (shipping, refunds, opening
hours, contact), and question-answer pairs about it:

- ``train``: questions from the *training* paraphrase templates about the *training* facts;
- ``held_out``: questions from *held-out* templates about *held-out* facts, a (product,
  attribute) pair never asked in training, so answering needs the passage (retrieval);
- ``unseen_facts``: the held-out facts once each, in a *training* template's words;
- ``out_of_scope``: products the shop does not sell, and off-topic questions; the right
  response is to hand over to a person (``passage_id=None``, answer :data:`HAND_OVER`).

Every answer is a span copied out of its passage ("49 euros", "2 years", "red"), so it is
scored like SQuAD (Rajpurkar et al. 2016): :func:`exact_match` and :func:`token_f1` after
:func:`normalize_answer`. :func:`evaluate_answers` runs an answerer behind an optional BM25
retriever with a hand-over rule (answer only when the best BM25 score reaches a threshold,
:func:`choose_threshold`) and reports accuracy *and* the false-answer rate, the number a
business cares about: how often the bot says something wrong instead of passing the customer
on.

Simplified: one fact per sentence slot, a closed set of templates and values, and ASCII text
over the fixed alphabet :data:`CHARACTERS`, so that a character-level model with a
:data:`MAX_CHARS`-character context reads passage, question and answer at once.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aigc_course.text.retrieval import BM25

SHOP = "Little Owl Homeware"
EMAIL = "help@littleowl.example"
HAND_OVER = "Let me pass you to a colleague."
MAX_CHARS = 256  # the context of the chapter's character-level GPT
# The fixed alphabet of every passage, question, answer and prompt: newline, space, the
# punctuation below, digits and ASCII letters (75 characters).
CHARACTERS = "\n !'(),-.:;?@" + string.digits + string.ascii_uppercase + string.ascii_lowercase

NAMES = ("Aurora", "Nimbus", "Pebble", "Zephyr", "Juniper", "Comet",
         "Willow", "Ember", "Halcyon", "Orbit", "Maple", "Cobalt")
ITEMS = ("kettle", "lamp", "toaster", "blender", "clock",
         "fan", "heater", "mug", "speaker", "backpack")
COLOURS = ("red", "blue", "green", "black", "white", "grey", "yellow", "orange", "silver", "teal")
# Words of no catalogue product: out-of-scope products mix them with NAMES and ITEMS.
OTHER_NAMES = ("Quasar", "Tundra", "Saffron", "Velvet")
OTHER_ITEMS = ("drone", "sofa", "bicycle", "printer", "tent")

# attribute -> (training templates, held-out templates); "{p}" is the product's name.
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "price": (("How much is the {p}?", "What does the {p} cost?", "Price of the {p}?",
               "What is the price of the {p}?"),
              ("How much do I pay for the {p}?", "What would the {p} cost me?")),
    "warranty": (("What warranty does the {p} have?", "How long is the warranty on the {p}?",
                  "Warranty of the {p}?", "How many years of warranty does the {p} get?"),
                 ("For how long is the {p} guaranteed?", "What guarantee comes with the {p}?")),
    "returns": (("How long can I return the {p}?", "What is the return window for the {p}?",
                 "Returns for the {p}?", "Within how many days can the {p} be returned?"),
                ("How many days do I have to send back the {p}?",
                 "Until when can I give back the {p}?")),
    "colour": (("What colour is the {p}?", "Which colour does the {p} come in?",
                "Colour of the {p}?", "What is the colour of the {p}?"),
               ("In what colour is the {p} sold?", "What shade is the {p}?")),
    "delivery": (("How fast is delivery for the {p}?", "When will the {p} arrive?",
                  "Delivery time of the {p}?", "How many days does delivery of the {p} take?"),
                 ("How long until the {p} is delivered?", "How soon can I get the {p}?")),
    "shipping_cost": (("How much is shipping?", "What does shipping cost?", "Shipping cost?",
                       "What is the price of standard shipping?"),
                      ("How much do you charge for shipping?",
                       "What do I pay for standard shipping?")),
    "free_shipping": (("When is shipping free?", "Above what order value is shipping free?",
                       "Free shipping threshold?", "How much must I spend for free shipping?"),
                      ("From what amount do I get free shipping?",
                       "Is there free shipping, and from how much?")),
    "refund_time": (("How long does a refund take?", "When do I get my refund?", "Refund time?",
                     "How fast is a refund paid?"),
                    ("How many days until my refund is paid?", "When will the refund reach me?")),
    "opening_hours": (("When is the shop open?", "What are your opening hours?",
                       "Opening hours?", "On which days is the shop open?"),
                      ("At what times is the shop open?", "Tell me your opening hours, please.")),
    "email": (("What is your email?", "How can I email you?", "Email address?",
               "Which email do I write to?"),
              ("Where do I send an email?", "What email address can I write to for help?")),
    "phone": (("What is your phone number?", "How can I call you?", "Phone number?",
               "Which number do I call?"),
              ("What phone number can I ring?", "How do I reach you by phone?")),
}
PRODUCT_ATTRIBUTES = ("price", "warranty", "returns", "colour", "delivery")
POLICY_ATTRIBUTES = ("shipping_cost", "free_shipping", "refund_time", "opening_hours",
                     "email", "phone")
OFF_TOPIC = (
    "What is the capital of France?", "Can you tell me a joke?", "Who will win the match?",
    "What is the weather like tomorrow?", "How do I cook rice?", "What is the meaning of life?",
    "Can you help me with my homework?", "Which film should I watch tonight?",
    "How old is the universe?", "Do you like music?", "What time is it in Tokyo?",
    "Can you recommend a good book?", "Who painted the Mona Lisa?", "How tall is Everest?",
    "What is two plus two?", "Where can I park my car?",
)


@dataclass(frozen=True)
class Passage:
    """One entry of the knowledge base: ``text`` is at most about 120 characters."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class QA:
    """A question, its gold answer and where the answer is.

    ``passage_id`` is ``None`` for an out-of-scope question (answer :data:`HAND_OVER`);
    ``product`` is ``None`` for a policy or off-topic question, ``attribute`` for off-topic.
    """

    question: str
    answer: str
    passage_id: str | None
    product: str | None
    attribute: str | None


def format_example(question: str, answer: str | None = None, context: str | None = None) -> str:
    """The one prompt format: ``"Context: {context}\\nQ: {question}\\nA: {answer}\\n"``.

    Without ``context`` the first line is left out; with ``answer=None`` the text ends right
    after ``"A: "`` for a model to continue.

    Raises:
        ValueError: a character outside :data:`CHARACTERS`, or a newline inside a field.
    """
    for field in (question, answer, context):
        if field is None:
            continue
        bad = sorted((set(field) - set(CHARACTERS)) | (set(field) & {"\n"}))
        if bad:
            raise ValueError(f"characters {bad!r} not allowed in {field!r}; valid: "
                             f"{CHARACTERS[1:]!r} (newline only between fields)")
    prompt = (f"Context: {context}\n" if context is not None else "") + f"Q: {question}\nA: "
    return prompt if answer is None else prompt + answer + "\n"


@dataclass(frozen=True)
class SupportSet:
    """The knowledge base and the three question sets of :func:`make_support_set`."""

    passages: tuple[Passage, ...]
    train: tuple[QA, ...]
    held_out: tuple[QA, ...]
    out_of_scope: tuple[QA, ...]
    seed: int
    #: the held-out facts asked with the *training* templates: new facts, familiar wording
    #: (what a reader that copies from the passage should answer; ``held_out`` adds new
    #: wording on top)
    unseen_facts: tuple[QA, ...] = ()
    #: one passage per fact (``make_support_set(chunks=True)``) instead of one per product
    chunks: bool = False

    def passage(self, passage_id: str) -> Passage:
        """The passage called ``passage_id``."""
        for p in self.passages:
            if p.id == passage_id:
                return p
        raise ValueError(f"unknown passage {passage_id!r}; valid: "
                         f"{', '.join(p.id for p in self.passages)}")

    def documents(self) -> list[str]:
        """The passages' texts, in order: what :class:`BM25` indexes."""
        return [p.text for p in self.passages]

    def retriever(self, **kwargs: Any) -> BM25:
        """A :class:`BM25` index over :meth:`documents` (``kwargs`` go to :class:`BM25`)."""
        return BM25(self.documents(), **kwargs)

    def text(self, with_context: bool) -> str:
        """The fine-tuning text: every training QA formatted, a blank line between them.

        Args:
            with_context: put the gold passage before each question (reading
                comprehension) or not (closed book: the model must memorise the facts).
        """
        return "\n".join(
            format_example(qa.question, qa.answer,
                           self.passage(qa.passage_id).text if with_context and qa.passage_id
                           else None)
            for qa in self.train)

    def characters(self) -> str:
        """The sorted characters the set uses (passages and every formatted example)."""
        used = set(self.text(with_context=True)) | set("".join(self.documents()))
        for qa in self.held_out + self.out_of_scope:
            used |= set(format_example(qa.question, qa.answer))
        return "".join(sorted(used))


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _product(product: str, rng: np.random.Generator
             ) -> tuple[str, dict[str, str], dict[str, str]]:
    """A product's passage, its attributes' answers and one sentence per attribute (the
    chunks of ``chunks=True``), the values drawn from ``rng``."""
    answers = {"price": f"{10 * int(rng.integers(1, 21)) - 1} euros",
               "warranty": _plural(int(rng.choice([1, 2, 3, 5])), "year"),
               "returns": f"{rng.choice([14, 30, 60])} days",
               "colour": str(rng.choice(COLOURS)),
               "delivery": _plural(int(rng.choice([1, 2, 3, 5, 7])), "day")}
    fields = {"price": f"price {answers['price']}", "warranty": f"warranty {answers['warranty']}",
              "returns": f"returns within {answers['returns']}",
              "colour": f"colour {answers['colour']}",
              "delivery": f"delivery in {answers['delivery']}"}
    text = f"{product}: " + "; ".join(fields[a] for a in PRODUCT_ATTRIBUTES) + "."
    chunks = {a: f"{product}: {fields[a]}." for a in PRODUCT_ATTRIBUTES}
    return text, answers, chunks


def reading_examples(n: int, seed: int = 0, chunks: bool = False
                     ) -> list[tuple[str, str, str]]:
    """``n`` synthetic reading exercises ``(context, question, answer)``.

    Each is a product passage in the knowledge base's format with *freshly drawn* values
    (any name of the ``NAMES x ITEMS`` grid), a training template's question about it, and
    the answer copied from that passage. A model fine-tuned on them cannot answer from
    memory, as the values change every time: it has to read (counterfactual data
    augmentation). No held-out template is used, and no fact of the shop: the values are
    random, not the catalogue's.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([seed, 6])
    grid = [f"{name} {item}" for name in NAMES for item in ITEMS]
    out = []
    for _ in range(n):
        product = grid[int(rng.integers(len(grid)))]
        text, answers, sentences = _product(product, rng)
        attribute = PRODUCT_ATTRIBUTES[int(rng.integers(len(PRODUCT_ATTRIBUTES)))]
        templates = TEMPLATES[attribute][0]
        question = templates[int(rng.integers(len(templates)))].format(p=product)
        out.append((sentences[attribute] if chunks else text, question, answers[attribute]))
    return out


def make_support_set(seed: int = 0, n_products: int = 40, held_out_fraction: float = 0.3,
                     n_out_of_scope: int = 40, chunks: bool = False) -> SupportSet:
    """Generate the shop's passages and questions, the same for the same arguments.

    Each fact (a product's price, warranty, return window, colour or delivery time, or one of
    six policy facts) is asked with every training template if it is a training fact, with
    every held-out template if it is one of the ``held_out_fraction`` held-out facts: with the
    defaults 576 training and 124 held-out questions over 44 passages.

    Args:
        seed: chooses the catalogue, the values and the held-out facts.
        n_products: products in the catalogue, drawn from the ``NAMES x ITEMS`` grid (1-120).
        held_out_fraction: share of the facts asked only in ``held_out``, in ``(0, 1)``.
        n_out_of_scope: out-of-scope questions, about a third of them off-topic.
        chunks: cut each product's passage into one passage per attribute ("Aurora kettle:
            colour red."), the retrieval units of a fact-level index: the retriever then
            has to find the attribute too, and the reader reads one sentence. The same
            seed gives the same facts and questions either way.

    Returns:
        A :class:`SupportSet`; ``train`` and ``held_out`` shuffled.
    """
    grid = [f"{name} {item}" for name in NAMES for item in ITEMS]
    if not 1 <= n_products <= len(grid):
        raise ValueError(f"n_products must be in 1..{len(grid)}, got {n_products}")
    if not 0 < held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    rng = np.random.default_rng(seed)
    catalogue = [grid[i] for i in sorted(rng.choice(len(grid), n_products, replace=False))]

    # (1) the knowledge base; facts are (passage id, product, attribute, answer)
    passages: list[Passage] = []
    facts: list[tuple[str, str | None, str, str]] = []
    for i, product in enumerate(catalogue):
        text, answers, sentences = _product(product, rng)
        if chunks:
            passages += [Passage(f"product-{i:02d}-{a}", product, sentences[a])
                         for a in PRODUCT_ATTRIBUTES]
            facts += [(f"product-{i:02d}-{a}", product, a, answers[a])
                      for a in PRODUCT_ATTRIBUTES]
        else:
            passages.append(Passage(f"product-{i:02d}", product, text))
            facts += [(f"product-{i:02d}", product, a, answers[a]) for a in PRODUCT_ATTRIBUTES]
    cost, free, days = rng.choice([3, 4, 5]), rng.choice([40, 50, 60]), rng.choice([5, 7, 10])
    last = rng.choice(["Friday", "Saturday"])
    opens, closes = rng.choice([8, 9]), rng.choice([17, 18])
    phone = f"0100 {rng.integers(100, 1000)} {rng.integers(100, 1000)}"
    policy = {  # passage id -> (title, text, {attribute: answer})
        "policy-shipping": ("Shipping", f"Shipping: standard shipping costs {cost} euros; free "
                            f"shipping on orders over {free} euros.",
                            {"shipping_cost": f"{cost} euros", "free_shipping": f"{free} euros"}),
        "policy-refunds": ("Refunds", f"Refunds: a refund is paid within {days} days of "
                           "receiving the returned item.", {"refund_time": f"{days} days"}),
        "policy-hours": ("Opening hours", f"Opening hours: the shop is open Monday to {last}, "
                         f"{opens} to {closes}.",
                         {"opening_hours": f"Monday to {last}, {opens} to {closes}"}),
        "policy-contact": ("Contact", f"Contact: email {EMAIL}; call our phone number {phone}.",
                           {"email": EMAIL, "phone": phone}),
    }
    for pid, (title, text, answers) in policy.items():
        passages.append(Passage(pid, title, text))
        facts += [(pid, None, a, answer) for a, answer in answers.items()]

    # (2) held-out facts; every fact asked with every template of its split
    order = rng.permutation(len(facts))
    n_held = min(max(1, round(held_out_fraction * len(facts))), len(facts) - 1)
    held = set(order[:n_held].tolist())

    def ask(fact: tuple[str, str | None, str, str], split: int) -> list[QA]:
        pid, product, attribute, answer = fact
        return [QA(t.format(p=product), answer, pid, product, attribute)
                for t in TEMPLATES[attribute][split]]

    train = [qa for j, f in enumerate(facts) if j not in held for qa in ask(f, 0)]
    held_out = [qa for j, f in enumerate(facts) if j in held for qa in ask(f, 1)]
    unseen_facts = [ask(f, 0)[j % len(TEMPLATES[f[2]][0])] for j, f in enumerate(facts)
                    if j in held]                       # one training template per fact

    # (3) out of scope: off-topic questions and products the shop does not sell
    unknown = sorted({f"{n} {i}" for n in NAMES + OTHER_NAMES for i in ITEMS + OTHER_ITEMS}
                     - set(catalogue))
    n_off = min(round(n_out_of_scope / 3), len(OFF_TOPIC))
    if not 0 <= n_out_of_scope - n_off <= len(unknown):
        raise ValueError(f"n_out_of_scope must be in 0..{len(unknown) + len(OFF_TOPIC)}, "
                         f"got {n_out_of_scope}")
    out = [QA(str(q), HAND_OVER, None, None, None)
           for q in rng.choice(OFF_TOPIC, n_off, replace=False)]
    for product in rng.choice(unknown, n_out_of_scope - n_off, replace=False):
        attribute = str(rng.choice(PRODUCT_ATTRIBUTES))
        template = str(rng.choice(sum(TEMPLATES[attribute], ())))
        out.append(QA(template.format(p=product), HAND_OVER, None, str(product), attribute))

    shuffle = lambda qas: tuple(qas[i] for i in rng.permutation(len(qas)))
    return SupportSet(tuple(passages), shuffle(train), shuffle(held_out), tuple(out), seed,
                      tuple(unseen_facts), chunks)


# ---------------------------------------------------------------- SQuAD-style metrics


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, drop punctuation and articles, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised strings are equal, else 0.0 (Rajpurkar et al. 2016)."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall of the normalised answers.

    $F_1 = 2PR / (P + R)$ over the multiset of shared tokens; as in the SQuAD 2.0 script, if
    either side normalises to no tokens the score is 1.0 when both do, else 0.0.
    """
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------- answering with hand-over


def top_scores(questions: Sequence[QA], retriever: BM25) -> np.ndarray:
    """The best BM25 score of each question: float64 array of shape ``(len(questions),)``."""
    return np.array([retriever.search(qa.question, k=1)[0][1] for qa in questions])


def choose_threshold(scores_in_scope: Sequence[float] | np.ndarray, keep: float = 0.95) -> float:
    """The largest hand-over threshold that still answers ``keep`` of the in-scope questions.

    Rule: hand over when the top BM25 score is *below* the threshold, so the threshold is the
    $\\lceil \\mathrm{keep} \\cdot n \\rceil$-th largest in-scope score. It looks at in-scope
    validation questions only (the training questions will do): no out-of-scope examples are
    needed to set it, and the out-of-scope hand-over rate it achieves is then a fair test.
    """
    s = np.sort(np.asarray(scores_in_scope, dtype=np.float64))[::-1]
    if len(s) == 0 or not 0 < keep <= 1:
        raise ValueError(f"need at least one score and 0 < keep <= 1, got {len(s)}, {keep}")
    return float(s[math.ceil(keep * len(s) - 1e-9) - 1])


def evaluate_answers(questions: Sequence[QA], answer_fn: Callable[[str, str | None], str],
                     retriever: BM25 | None = None, passages: Sequence[Passage] | None = None,
                     k: int = 1, hand_over_below: float | None = None) -> dict[str, Any]:
    """Answer each question (retrieve, maybe hand over, else ``answer_fn``) and score it.

    The context given to ``answer_fn`` is the top-``k`` passages' texts joined by a space, or
    ``None`` without a retriever. A question is handed over when the top score is below
    ``hand_over_below``, or when ``answer_fn`` returns an empty string or :data:`HAND_OVER`.

    Args:
        questions: in-scope (``passage_id`` set) and out-of-scope QAs, mixed.
        answer_fn: ``(question, context) -> answer``.
        retriever: a :class:`BM25` over ``passages``' texts, or ``None`` (closed book).
        passages: the passages the retriever indexes, in its order.
        k: passages retrieved per question.
        hand_over_below: hand-over threshold on the top BM25 score (needs a retriever).

    Returns:
        ``em``, ``f1`` (over all in-scope questions, a hand-over scoring 0), ``em_answered``,
        ``f1_answered`` (over answered in-scope ones), ``answered_rate`` and
        ``hand_over_rate_in_scope`` (in-scope), ``hand_over_rate_out_of_scope``,
        ``false_answer_rate`` (wrong in-scope answers, EM 0, plus any out-of-scope answer, over
        all answers given), ``retrieval_accuracy`` (gold passage in the top ``k``), the counts
        ``n_in_scope``, ``n_out_of_scope``, ``n_answered``, and ``rows``, one dict per
        question with ``question``, ``gold``, ``passage_id``, ``prediction`` (``None`` if
        handed over), ``retrieved`` (ids), ``score``, ``handed_over``, ``in_scope``, ``em``,
        ``f1``. Rates with an empty denominator are ``nan``.
    """
    if retriever is not None and (passages is None or len(passages) != len(retriever)):
        raise ValueError("a retriever needs the passages it indexes, in the same order")
    if hand_over_below is not None and retriever is None:
        raise ValueError("hand_over_below needs a retriever: it thresholds the BM25 score")
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    rows: list[dict[str, Any]] = []
    for qa in questions:
        retrieved: list[str] = []
        context, score = None, None
        if retriever is not None and passages is not None:
            hits = retriever.search(qa.question, k=k)
            retrieved = [passages[i].id for i, _ in hits]
            context, score = " ".join(passages[i].text for i, _ in hits), hits[0][1]
        prediction: str | None = None
        if hand_over_below is None or score is None or score >= hand_over_below:
            prediction = answer_fn(qa.question, context)
            if not prediction.strip() or exact_match(prediction, HAND_OVER):
                prediction = None
        in_scope = qa.passage_id is not None
        em = exact_match(prediction, qa.answer) if in_scope and prediction is not None else 0.0
        f1 = token_f1(prediction, qa.answer) if in_scope and prediction is not None else 0.0
        rows.append({"question": qa.question, "gold": qa.answer, "passage_id": qa.passage_id,
                     "prediction": prediction,
                     "retrieved": retrieved, "score": score, "handed_over": prediction is None,
                     "in_scope": in_scope, "em": em, "f1": f1})

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    inside = [r for r in rows if r["in_scope"]]
    answered = [r for r in inside if not r["handed_over"]]
    outside = [r for r in rows if not r["in_scope"]]
    given = [r for r in rows if not r["handed_over"]]
    return {
        "em": mean([r["em"] for r in inside]), "f1": mean([r["f1"] for r in inside]),
        "em_answered": mean([r["em"] for r in answered]),
        "f1_answered": mean([r["f1"] for r in answered]),
        "answered_rate": mean([float(not r["handed_over"]) for r in inside]),
        "hand_over_rate_in_scope": mean([float(r["handed_over"]) for r in inside]),
        "hand_over_rate_out_of_scope": mean([float(r["handed_over"]) for r in outside]),
        "false_answer_rate": mean([float(not r["in_scope"] or r["em"] == 0) for r in given]),
        "retrieval_accuracy": (mean([float(r["passage_id"] in r["retrieved"]) for r in inside])
                               if retriever is not None else float("nan")),
        "n_in_scope": len(inside), "n_out_of_scope": len(outside), "n_answered": len(given),
        "rows": rows,
    }

"""Model cards filled with numbers measured now, not typed: ``aigc-course card CKPT``.

A model card (Mitchell et al. 2019, "Model Cards for Model Reporting", FAT* '19) says what
a trained model is, what it is for and not for, what it was trained on, how well it does
*against what*, where it fails and whom that may hurt, and what it cost. The sections
follow the Hugging Face model card template (``modelcard_template.md`` of
``huggingface_hub``): Model Details, Uses (with Out-of-Scope Use), Training Details,
Evaluation, Bias, Risks, and Limitations, Environmental Impact, How to Get Started with
the Model (with the command that reproduces it) and Citation.

:func:`make_model_card` loads a checkpoint (:func:`aigc_course.kinds.load_model`, which
refuses judges and foreign files with the list of valid kinds), draws ``n`` samples,
scores them with :func:`aigc_course.metrics.evaluate` against the train split of the
model's own dataset, audits them (:mod:`aigc_course.reports.audit`: class shares and
memorisation) and fills the card; every other number is read from the checkpoint, and a
value the checkpoint does not record says "not recorded". A text model (kind ``gpt``)
gets its validation bits per character measured now on the corpus's validation split,
the checkpoint's recorded values and one sample, instead of image metrics.

Environmental impact is an estimate (the training machine's power draw is not recorded):
energy $E = t \\cdot P / 3.6\\times10^6$ kWh for $t$ seconds at $P$ watts, emissions
$E \\cdot I$ grams CO2e at a grid intensity $I$ in gCO2e/kWh (the "power x time x carbon
intensity" estimate of Strubell et al. 2019 and Lacoste et al. 2019's ML CO2 calculator).
Both assumptions are stated on the card with their sources; pass your own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from aigc_course import kinds
from aigc_course.checkpoint import read_checkpoint
from aigc_course.data.registry import info, load_images
from aigc_course.metrics import evaluate
from aigc_course.reports.audit import audit_samples
from aigc_course.utils import Timer, file_sha256

#: assumed power draw of the training machine, in watts, and why
WATTS = 28.0
WATTS_SOURCE = ("assumed: the processor base power of a typical laptop CPU package, e.g. "
                "Intel Core i7-1165G7, 28 W (configurable 12-28 W; Intel ARK product "
                "specification); the training machine's own draw is not recorded")
#: assumed carbon intensity of the electricity, in gCO2e/kWh, and its source
GRID_G_PER_KWH = 281.0
GRID_SOURCE = ("assumed: the EU-27 average greenhouse-gas emission intensity of electricity "
               "generation in 2018, 281 gCO2e/kWh (European Environment Agency, indicator "
               "'Greenhouse gas emission intensity of electricity generation in Europe', "
               "ENER 038, assessment of December 2020)")
SECTIONS = ("Model Details", "Uses", "Out-of-Scope Use", "Training Details", "Training Data",
            "Training Procedure", "Evaluation", "Bias, Risks, and Limitations",
            "Environmental Impact", "How to Get Started with the Model", "Citation")
NOT_RECORDED = "not recorded"
PAPERS = {
    "gan": "Goodfellow et al. 2014, Generative Adversarial Nets; Radford et al. 2016, DCGAN",
    "vae": "Kingma & Welling 2014, Auto-Encoding Variational Bayes",
    "ddpm": "Ho et al. 2020, Denoising Diffusion Probabilistic Models; Song et al. 2021, "
            "DDIM; Ho & Salimans 2021, Classifier-Free Diffusion Guidance",
    "gpt": "Radford et al. 2019, Language Models are Unsupervised Multitask Learners",
}
#: training settings the card leaves out (how the run was watched, not what it learnt)
SKIPPED = ("progress", "steps", "device", "threads", "checkpoint_every", "checkpoint_path")
SAMPLE_TOKENS = 200                 # the text sample's length and the timing's


def energy_kwh(seconds: float, watts: float = WATTS) -> float:
    """Energy of ``seconds`` at ``watts``: $E = t P / 3.6\\times10^6$ kWh (1 kWh = 3.6 MJ)."""
    return seconds * watts / 3.6e6


def emissions_g(seconds: float, watts: float = WATTS,
                g_per_kwh: float = GRID_G_PER_KWH) -> float:
    """Grams CO2e of ``seconds`` at ``watts`` on a grid of ``g_per_kwh``: $E \\cdot I$."""
    return energy_kwh(seconds, watts) * g_per_kwh


@dataclass
class Metric:
    """One number of the card and what it is measured against.

    Attributes:
        name: e.g. ``"judge FID"``. value: the number (``None``: not recorded).
        reference: the split, ``n`` and feature space it is computed against.
        origin: ``"measured now"`` or ``"checkpoint metadata"``.
    """

    name: str
    value: float | None
    reference: str
    origin: str = "measured now"


@dataclass
class ModelCard:
    """A checkpoint's model card; :meth:`to_markdown` renders it, :meth:`to_dict` keeps it."""

    path: str
    kind: str
    description: str
    sha256: str
    size_bytes: int
    torch_version: str
    params: int
    conditional: bool
    num_classes: int
    architecture: dict[str, Any]
    dataset: str
    dataset_about: str
    training_data: list[str]
    training: dict[str, Any]
    metrics: list[Metric]
    limitations: list[str]
    environment: dict[str, Any]
    reproduce: str
    sampling: str
    n: int
    seed: int
    modality: str = "image"
    sample_text: str | None = None
    notes: list[str] = field(default_factory=list)
    card_seconds: float = 0.0

    def value(self, name: str) -> float | None:
        """The value of metric ``name``.

        Raises:
            ValueError: no such metric (the message lists the card's).
        """
        for metric in self.metrics:
            if metric.name == name:
                return metric.value
        raise ValueError(f"no metric {name!r}; the card has: "
                         f"{', '.join(m.name for m in self.metrics)}")

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python values (JSON-serialisable)."""
        return asdict(self)

    def to_markdown(self, level: int = 1) -> str:
        """The card as Markdown; its title is a heading of ``level`` (1 = a page)."""
        h1, h2, h3 = "#" * level, "#" * (level + 1), "#" * (level + 2)
        name = Path(self.path).name
        arch = ", ".join(f"{k} {_text(v)}" for k, v in _flat(self.architecture).items())
        env = self.environment
        lines = [
            f"{h1} Model card: {name}", "", f"{h2} Model Details", "", self.description, "",
            "| | |", "|---|---|", f"| kind | `{self.kind}` ({PAPERS.get(self.kind, '')}) |",
            f"| parameters | {_text(self.params)} |", f"| architecture | {arch} |",
            f"| conditional | {self._conditioning()} |", f"| file | `{self.path}` |",
            f"| size | {_text(self.size_bytes)} bytes |", f"| SHA-256 | `{self.sha256}` |",
            f"| saved with torch | {self.torch_version} |", "",
            f"{h2} Uses", "", *self._uses(), "", f"{h3} Out-of-Scope Use", "",
            *self._out_of_scope(), "", f"{h2} Training Details", "", f"{h3} Training Data",
            "", self.dataset_about, "", *(f"- {line}" for line in self.training_data), "",
            f"{h3} Training Procedure", "", "| setting | value |", "|---|---|",
            *(f"| {k} | {_text(v)} |" for k, v in _flat(self.training).items()), "",
            f"{h2} Evaluation", "",
            f"Sampling: {self.sampling}; seed {self.seed}.", "",
            "| metric | value | computed against | origin |", "|---|---|---|---|",
            *(f"| {m.name} | {_text(m.value)} | {m.reference} | {m.origin} |"
              for m in self.metrics), "",
            *([f"Sample (seed {self.seed}):", "", "```text", self.sample_text, "```", ""]
              if self.sample_text is not None else []),
            f"{h2} Bias, Risks, and Limitations", "",
            *(f"- {line}" for line in self.limitations), "",
            f"{h2} Environmental Impact", "",
            "| | |", "|---|---|",
            f"| training time | {_text(env['train_seconds'])} s |",
            f"| device | {_text(env['device'])} |",
            f"| power draw | {_text(env['watts'])} W ({env['watts_source']}) |",
            f"| grid carbon intensity | {_text(env['g_per_kwh'])} gCO2e/kWh "
            f"({env['grid_source']}) |",
            f"| training energy | {_text(env['train_kwh'])} kWh |",
            f"| training emissions | {_text(env['train_g'])} gCO2e |",
            f"| sampling emissions | {_text(env['sampling_g'])} gCO2e per "
            f"{env['sampling_unit']} |", "",
            "Energy = seconds x watts / 3.6e6 kWh; emissions = energy x grid intensity.", "",
            f"{h2} How to Get Started with the Model", "", "```bash", self._start(), "```",
            "", "```python", "from aigc_course import kinds",
            f"kind, model = kinds.load_model({str(self.path)!r})",
            "images, labels, seconds = kinds.draw(model, 16, seed=0)"
            if self.modality == "image" else "print(model.generate_text('\\n', 200))",
            "```", "", "Reproduce it:", "", "```bash", self.reproduce, "```", "",
            *(f"- {note}" for note in self.notes), *([""] if self.notes else []),
            f"{h2} Citation", "", "```bibtex", self._bibtex(), "```", "",
            f"Card format: Mitchell et al. 2019, Model Cards for Model Reporting (FAT* '19, "
            f"pp. 220-229). Card made in {_text(self.card_seconds)} s.", ""]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown(level=3)

    def _start(self) -> str:
        if self.modality == "text":
            return f"aigc-course generate {self.path} --max-new-tokens 200"
        return f"aigc-course sample {self.path} --n 16 --seed 0 --out samples.npz"

    def _conditioning(self) -> str:
        if self.modality == "text":
            return "no (a prompt)"
        return f"yes, {self.num_classes} classes" if self.conditional else "no"

    def _uses(self) -> list[str]:
        if self.modality == "text":
            return [f"Teaching: a small language model trained on `{self.dataset}` text, to "
                    "show how sampling settings and training length change perplexity and "
                    "samples (chapter 06 of the course)."]
        return [f"Teaching: {self._image_size()} grey images like the `{self.dataset}` "
                "training set, to compare generative model families, their metrics and "
                "their failure modes on a laptop CPU (chapters 03-11 of the course)."]

    def _image_size(self) -> str:
        size = self.training.get("image_size", NOT_RECORDED)
        return f"{size}x{size}" if isinstance(size, int) else "small"

    def _out_of_scope(self) -> list[str]:
        common = ["- Any decision about people; any use presented as real data."]
        if self.modality == "text":
            return ["- Answering questions or writing code: the model knows only the "
                    "statistics of its small corpus and states falsehoods fluently.", *common]
        return ["- Recognising or generating real handwriting (cheques, forms, signatures): "
                f"it learnt {self.training_data[0] if self.training_data else 'one dataset'}.",
                "- Data augmentation for another classifier without checking the class "
                "shares and label accuracy below.", *common]

    def _bibtex(self) -> str:
        key = f"aigc_course_{Path(self.path).stem}"
        return (f"@misc{{{key},\n  title  = {{{self.kind} model {Path(self.path).name}, "
                f"course package aigc\\_course}},\n  note   = {{SHA-256 {self.sha256[:16]}, "
                f"{_text(self.params)} parameters, trained on {self.dataset}}}\n}}")


def _text(value: Any) -> str:
    """A value as card text: numbers to 4 significant digits, missing ones said so."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_RECORDED
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _reproduce(kind: kinds.ModelKind, path: Path, metadata: dict[str, Any],
               conditional: bool) -> tuple[str, list[str]]:
    """The ``aigc-course train`` command that regenerates ``path``, and notes on it."""
    train = metadata.get("train", {}) or {}
    notes = []
    profile = metadata.get("profile")
    parts = ["aigc-course", "train", kind.name]
    dataset = metadata.get("dataset")
    parts += [f"--dataset {dataset}"] if dataset is not None else []
    size = metadata.get("image_size")
    parts += [f"--image-size {size}"] if size is not None else []
    parts += ["--conditional"] if conditional else []
    parts += [f"--profile {profile}"] if profile is not None else []
    if profile is None:
        notes.append("The checkpoint records no profile: the command uses the default one.")
    for flag, value in (("--steps", train.get("steps", metadata.get("steps"))),
                        ("--seed", train.get("seed", metadata.get("seed")))):
        parts += [f"{flag} {value}"] if value is not None else []
    parts += [f"--out {path}"]
    return " ".join(parts), notes


def _image_metrics(model: Any, kind: str, dataset: str, n: int, seed: int,
                   options: dict[str, Any]) -> tuple[list[Metric], list[str], float, str]:
    """Measured metrics and limitations of an image model; its sampling seconds per 1,000."""
    images, labels, seconds = kinds.draw(model, n, seed=seed, **options)
    requested = labels if model.conditional else None
    scores = evaluate(images, requested, dataset=dataset, seed=seed)
    audit = audit_samples(images, requested, kind, kind, dataset=dataset,
                          seed=seed, seconds=seconds, options=options)
    size = int(images.shape[-1])
    ref = f"{dataset} train split at {size}x{size}, judge features, n = {n} samples"
    judged = f"the {dataset} judge on n = {n} samples"
    per_1000 = seconds / n * 1000
    metrics = [
        Metric("judge FID", scores["fid"], ref),
        Metric("KID", scores["kid"], ref + f" ({scores['kid_std']:.3g} std over subsets)"),
        Metric("precision", scores["precision"], ref + ", k = 3"),
        Metric("recall", scores["recall"], ref + ", k = 3"),
        Metric("recognisability", scores["recognisability"], judged + ", confidence >= 0.9"),
        Metric("class coverage", scores["coverage"], judged + ", H(p) / log K"),
        Metric("class TV distance", audit.tv, f"{judged} vs {audit.reference}"),
        Metric("chi-square p-value", audit.p_value,
               f"{judged} vs {audit.reference}, {audit.dof} degrees of freedom"),
        Metric("memorised share", audit.copy_fraction,
               f"samples nearer the {dataset} train split than 99% of test images, pixels"),
        Metric("memorised share of test images", audit.test_copy_fraction,
               f"{dataset} test split, the same threshold (the false-positive rate)"),
        Metric("sampling seconds per 1,000", per_1000, f"{n} samples, this machine, "
               f"{'CPU' if not _cuda() else 'CUDA'}")]
    if audit.label_accuracy is not None:
        metrics.insert(6, Metric("label accuracy", audit.label_accuracy,
                                 judged + ", requested vs judged class"))
    limits = [
        f"Measured on {size}x{size} grey `{dataset}` images only, in the features of a "
        "small judge trained on the same data: the numbers compare models scored by this "
        f"judge at n = {n}, nothing more (FID is biased upwards at small n).",
        f"Class shares: total-variation distance {audit.tv:.3g} from {audit.reference}; "
        f"class shares range from {audit.min_ratio:.3g}x to {audit.max_ratio:.3g}x their "
        f"reference (chi-square p = {audit.p_value:.3g}).",
        f"Worst classes ({'lowest label accuracy' if audit.conditional else 'least drawn'}): "
        + ", ".join(_worst(audit, k) for k in audit.worst_classes) + ".",
        f"Memorisation: {audit.copy_fraction:.3g} of the samples lie nearer a training image "
        f"than 99% of test images do ({audit.test_copy_fraction:.3g} of test images); "
        "pixel distance misses shifted copies."]
    return metrics, limits, per_1000, f"{n} samples, {_sampling(kind, model, options)}"


def _worst(audit: Any, k: int) -> str:
    rec = audit.recognisability_per_class.get(k)
    if audit.label_accuracy_per_class is not None:
        return (f"{k} (label accuracy {audit.label_accuracy_per_class[k]:.3g}, "
                f"recognisability {_text(rec)})")
    return (f"{k} (share {audit.shares[k]:.3g} vs {audit.reference_shares[k]:.3g}, "
            f"recognisability {_text(rec)})")


def _cuda() -> bool:
    return bool(torch.cuda.is_available())


def _sampling(kind: str, model: Any, options: dict[str, Any]) -> str:
    if kind == "ddpm":
        steps = options.get("steps") or model.sampling_steps
        return f"{steps} DDIM steps, guidance w = {options.get('guidance', 0.0):g}"
    classes = "the classes in turn" if model.conditional else "unconditional"
    return f"one forward pass, {classes}"


def _text_metrics(model: Any, metadata: dict[str, Any], seed: int
                  ) -> tuple[list[Metric], list[str], float, str, str]:
    """Bits per character (measured now and recorded), a sample and its speed."""
    from aigc_course.text.corpus import CORPORA, corpus_text, split_text

    source = str(metadata.get("dataset", ""))
    metrics = []
    if source in CORPORA or Path(source).is_file():
        val = split_text(corpus_text(source)).val
        bpc = model.bits_per_char(val)
        metrics += [Metric("validation bits per character", bpc,
                           f"{source} val split ({len(val):,} characters)"),
                    Metric("validation perplexity per character", 2.0 ** bpc,
                           f"2^bpc on the {source} val split")]
    for split in ("val", "test"):
        recorded = metadata.get(f"{split}_bpc")
        metrics.append(Metric(f"{split} bits per character at training", recorded,
                              f"{source} {split} split", "checkpoint metadata"))
    with Timer() as timer:
        ids = model.sample(1, generator=torch.Generator().manual_seed(seed),
                           max_new_tokens=SAMPLE_TOKENS)
    per_1000 = timer.seconds / SAMPLE_TOKENS * 1000
    metrics.append(Metric("sampling seconds per 1,000 tokens", per_1000,
                          f"one sample of {SAMPLE_TOKENS} tokens, this machine"))
    limits = [f"Trained on `{source}` only: it continues text in that style and knows "
              "nothing reliable; its samples are not facts.",
              "Bits per character depend on the tokenizer and the corpus's Python version; "
              "compare them only on the same split."]
    text = model.tokenizer.decode(ids[0].tolist())
    return metrics, limits, per_1000, f"temperature 1, {SAMPLE_TOKENS} new tokens", text


def make_model_card(path: str | Path, *, n: int = 1000, seed: int = 0, steps: int | None = None,
                    guidance: float | None = None, watts: float = WATTS,
                    g_per_kwh: float = GRID_G_PER_KWH) -> ModelCard:
    """Load a model checkpoint, measure it now, and fill its card.

    Args:
        path: a model checkpoint (``gan``, ``vae``, ``ddpm``, ``gpt``).
        n: image samples to score (1,000: FID is biased on fewer). A text model draws
            one sample of :data:`SAMPLE_TOKENS` tokens instead.
        seed: the sampling seed.
        steps, guidance: DDIM steps and guidance scale of a diffusion model (``None``:
            the model's defaults).
        watts, g_per_kwh: the assumed power draw and grid intensity (see the module
            docstring; the card states them).

    Returns:
        The :class:`ModelCard`.

    Raises:
        FileNotFoundError: no file. ValueError: a corrupt or foreign file, a checkpoint
            that is not a model kind (a judge; the message lists the valid kinds),
            ``n < 50``, or ``steps``/``guidance`` for a kind without them.
    """
    with Timer() as timer:
        kind, model = kinds.load_model(path)
        path = Path(path)
        metadata = dict(read_checkpoint(path).get("metadata", {}))
        metadata.pop("history", None)
        options = {k: v for k, v in (("steps", steps), ("guidance", guidance)) if v is not None}
        kinds.check_options(kind, options)
        dataset = str(metadata.get("dataset", NOT_RECORDED))
        train = dict(metadata.get("train", {}) or {})
        training = {"steps": train.get("steps", metadata.get("steps")),
                    "seconds": metadata.get("seconds"), "threads": metadata.get("threads"),
                    "profile": metadata.get("profile"),
                    "final_loss": metadata.get("final_loss"),
                    **({"image_size": metadata.get("image_size")}
                       if kind.modality == "image" else {}),
                    # a setting saved as None is the run's default, not a missing record
                    **{k: "none (default)" if v is None else v for k, v in train.items()
                       if k not in SKIPPED}}
        params = metadata.get("params")
        if params is None:
            params = sum(p.numel() for p in _parameters(model))
        sample_text = None
        if kind.modality == "text":
            metrics, limits, per_1000, sampling, sample_text = _text_metrics(model, metadata,
                                                                             seed)
            about = f"Text corpus `{dataset}`."
            data_lines = [f"{k}: {_text(v)} characters"
                          for k, v in (metadata.get("chars", {}) or {}).items()]
            unit = "1,000 tokens"
        else:
            if n < 50:
                raise ValueError(f"n must be at least 50 for an image model's card, got {n}")
            metrics, limits, per_1000, sampling = _image_metrics(model, kind.name, dataset, n,
                                                                 seed, options)
            meta = info(dataset)
            size = int(metadata.get("image_size") or meta.native_size or 0)
            _, labels = load_images(dataset, "train", image_size=size)
            about = (f"{meta.description.rstrip('.')}. Source: {meta.source}. "
                     f"Licence: {meta.licence}.")
            counts = [int((labels == k).sum()) for k in range(len(meta.class_names))]
            data_lines = [f"the `{dataset}` train split, {len(labels):,} images at "
                          f"{size}x{size}", "images per class: " + ", ".join(
                              f"{c} {k}" for c, k in zip(meta.class_names, counts,
                                                         strict=True))]
            unit = "1,000 samples"
        metrics += _recorded(metadata)
        seconds = metadata.get("seconds")
        device = train.get("device")
        threads = metadata.get("threads", train.get("threads"))
        reproduce, notes = _reproduce(kind, path, metadata, model.conditional)
        env = {"train_seconds": seconds,
               "device": None if device is None else f"{device}, threads {_text(threads)}",
               "watts": watts, "watts_source": WATTS_SOURCE if watts == WATTS else "given",
               "g_per_kwh": g_per_kwh,
               "grid_source": GRID_SOURCE if g_per_kwh == GRID_G_PER_KWH else "given",
               "train_kwh": None if seconds is None else energy_kwh(seconds, watts),
               "train_g": None if seconds is None else emissions_g(seconds, watts, g_per_kwh),
               "sampling_g": emissions_g(per_1000, watts, g_per_kwh),
               "sampling_unit": unit}
        card = ModelCard(
            path=str(path), kind=kind.name, description=kind.description,
            sha256=file_sha256(path), size_bytes=path.stat().st_size,
            torch_version=str(metadata.get("torch_version", NOT_RECORDED)),
            params=int(params), conditional=bool(model.conditional),
            num_classes=int(model.num_classes), architecture=_architecture(path),
            dataset=dataset, dataset_about=about, training_data=data_lines,
            training=training, metrics=metrics, limitations=limits, environment=env,
            reproduce=reproduce, sampling=sampling, n=n, seed=seed, modality=kind.modality,
            sample_text=sample_text, notes=notes)
    card.card_seconds = timer.seconds
    return card


def _parameters(model: Any) -> Any:
    module = getattr(model, "gpt", model)
    return module.parameters()


def _architecture(path: Path) -> dict[str, Any]:
    config = dict(read_checkpoint(path).get("config", {}))
    config.pop("tokenizer", None)                  # a GPT's vocabulary: not architecture
    return config


def _recorded(metadata: dict[str, Any]) -> list[Metric]:
    """Metrics the checkpoint recorded when it was trained (``judge``/``test`` dicts)."""
    out = []
    for group in ("judge", "test"):
        for name, value in (metadata.get(group, {}) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                what = ("1,000 samples at training, judge" if group == "judge"
                        else "test split reconstructions at training")
                out.append(Metric(f"{name} (recorded)", float(value), what,
                                  "checkpoint metadata"))
    return out

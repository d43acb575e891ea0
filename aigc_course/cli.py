"""The command line: ``aigc-course`` (also ``python -m aigc_course``).

* ``aigc-course data NAME`` -- print the data card of a dataset (``--list`` lists them).
* ``aigc-course judge [--dataset D] [--epochs E] [--seed S] [--out PATH]`` -- retrain the
  judge of a dataset (by default overwriting the shipped or cached judge).
* ``aigc-course evaluate CKPT [--n N] [--steps S] [--guidance W] [--seed K] [--json]`` --
  every metric of a model checkpoint against its own dataset (recorded in the file),
  the reference named; per-class label accuracy for conditional models.

* ``aigc-course train KIND --dataset digits --image-size 16 [--conditional] --profile cpu
  --out ckpt.pt`` -- train a model of a registered kind (:data:`MODEL_KINDS`) and save it.
* ``aigc-course sample CKPT --n 500 [--label K] [--steps S] [--guidance W] --out s.npz``
  -- draw samples from any checkpoint (``--steps``/``--guidance``: diffusion only); the
  file holds ``images`` ``(N, C, H, W)`` in ``[-1, 1]`` and ``labels`` (``-1`` for an
  unconditional model).
* ``aigc-course compress CKPT --method METHOD [--sparsity F] [--keep F] [--width F]
  [--steps N] [--start N] [--round-steps N] [--seed S] --out small.pt`` -- prune, distil
  or quantise a checkpoint into another of the same kind
  (:func:`aigc_course.compress.methods.compress_checkpoint`; methods per kind in
  :data:`~aigc_course.compress.methods.METHODS`); it samples and evaluates like any.
* ``aigc-course export CKPT --format pt2|onnx --out F`` -- the network a request runs, with
  a dynamic batch, checked against eager (:mod:`aigc_course.deploy.export`).
* ``aigc-course calibrate-drift CKPT [--window W] [--windows K] [--rate A] --out CAL.json``
  -- fit the output drift monitor on healthy windows (:mod:`aigc_course.deploy.drift`).
* ``aigc-course serve CKPT [--host 127.0.0.1] [--port P] [--workers W] [--max-batch B]
  [--max-n N] [--queue Q] [--max-steps S] [--drift CAL.json]`` -- an HTTP service of any
  image checkpoint (:mod:`aigc_course.deploy.service`): ``POST /v1/generate``,
  ``/healthz``, ``/readyz``, ``/metrics``, a page at ``/``, docs at ``/docs``.
* ``aigc-course card CKPT [--n N] [--steps S] [--guidance W] [--seed K] [--out card.md]`` --
  a model card of any model checkpoint (:mod:`aigc_course.reports.model_card`): every
  number measured now or read from the checkpoint, Markdown on standard output.
* ``aigc-course watermark keygen --shape 1,16,16 --out key.pt``, ``watermark embed FILE
  --key key.pt --out marked.png`` and ``watermark detect FILE --key key.pt [--fpr 1e-3]``
  -- the invisible spread-spectrum mark of chapter 11
  (:mod:`aigc_course.provenance.spread_spectrum`) on PNG/JPEG images and ``.npz`` samples.
* ``aigc-course reconstruct CKPT [--split test] [--n 16] [--out rec.npz]`` -- encode and
  decode real images (kinds that can), printing PSNR and SSIM.
* ``aigc-course train gpt [--text-file F] [--tokenizer char|bpe] --out g.pt`` -- the text
  kind of chapter 06; ``aigc-course score g.pt --text-file F [--json]`` -- bits per
  character of a text under it; ``aigc-course generate g.pt [--prompt TEXT]
  [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]`` -- text.

Registered kinds are those of :data:`aigc_course.kinds.KINDS` (``gan`` of chapter 03,
``vae`` of 04, ``ddpm`` of 05, ``gpt`` of 06): ``train``, ``sample`` and ``reconstruct`` are written
once against the model-kind contract, so a kind registered there is picked up here
unchanged. A checkpoint records its kind and config (:mod:`aigc_course.checkpoint`), so
``sample`` knows what to build. argparse lives only at this edge; each command calls a
plain function of the package, and bad input exits with status 2 and one line on
standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

from aigc_course import kinds
from aigc_course.data.online import DatasetUnavailableError

#: the registered model kinds (the registry itself is :data:`aigc_course.kinds.KINDS`)
MODEL_KINDS = kinds.KINDS


def _data(args: argparse.Namespace) -> int:
    from aigc_course.data import available
    from aigc_course.data.card import make_data_card

    if args.list or args.name is None:
        print("\n".join(available()))
        return 0
    if args.name not in available():
        print(f"error: unknown dataset {args.name!r}; valid: {', '.join(available())}",
              file=sys.stderr)
        return 2
    card = make_data_card(args.name)
    print(json.dumps(card.to_dict(), indent=1) if args.json else card.to_markdown())
    return 0


def _judge(args: argparse.Namespace) -> int:
    from aigc_course.metrics.judge import RECIPES, retrain

    if args.dataset not in RECIPES:
        return _fail(ValueError(f"no judge for dataset {args.dataset!r}; valid: "
                                f"{', '.join(sorted(RECIPES))}"))
    try:
        metrics = retrain(args.dataset, out=args.out, epochs=args.epochs, seed=args.seed)
    except DatasetUnavailableError as error:
        return _fail(error)
    print(json.dumps(metrics, indent=1))
    return 0


def _fail(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 2


def _train(args: argparse.Namespace) -> int:
    try:
        kind = kinds.get(args.kind)
        profile: Any = args.profile
        dataset = args.dataset
        if kind.modality == "text":
            if args.text_file is not None:
                if dataset is not None:
                    raise ValueError("give --dataset (a corpus name) or --text-file, not both")
                dataset = str(args.text_file)
            if args.tokenizer is not None:
                profile = kinds.profile_for(kind, args.profile, tokenizer=args.tokenizer)
        elif args.text_file is not None or args.tokenizer is not None:
            raise ValueError(f"--text-file and --tokenizer apply to text models (gpt), not "
                             f"to a {kind.name!r} model")
        metrics = kinds.train_and_save(args.kind, args.out, profile, dataset=dataset,
                                       image_size=args.image_size,
                                       conditional=args.conditional, steps=args.steps,
                                       seed=args.seed, run=_run_options(args))
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    finally:
        _leave_process_group()
    if metrics["path"] is not None:                 # rank 0 (or alone) wrote the checkpoint
        print(json.dumps(metrics, indent=1))
    return 0


def _run_options(args: argparse.Namespace) -> Any:
    """``train``'s execution options; states go to ``OUT.states/`` unless told otherwise."""
    from aigc_course.train.engine import RunOptions

    folder = args.checkpoint_dir
    if folder is None and (args.resume or args.checkpoint_every):
        folder = args.out.with_name(args.out.name + ".states")
    return RunOptions(precision=args.precision, compile=args.compile,
                      channels_last=args.channels_last,
                      checkpoint_dir=None if folder is None else str(folder),
                      checkpoint_every=args.checkpoint_every, resume=args.resume)


def _leave_process_group() -> None:
    """Under ``torchrun``: wait for every rank, then leave the process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _load_image_model(path: Path) -> tuple[kinds.ModelKind, Any]:
    """A checkpoint's kind and model, refusing a text model (it has its own commands)."""
    kind, model = kinds.load_model(path)
    if kind.modality != "image":
        raise ValueError(f"{path} holds a {kind.name!r} text model: use aigc-course generate "
                         "(text) or aigc-course score (bits per character) instead")
    return kind, model


def _load_text_model(path: Path) -> Any:
    kind, model = kinds.load_model(path)
    if kind.modality != "text":
        raise ValueError(f"{path} holds a {kind.name!r} image model, not a text model; "
                         "use aigc-course sample or aigc-course evaluate")
    return model


def _score(args: argparse.Namespace) -> int:
    from aigc_course.text.corpus import read_text_file

    try:
        model = _load_text_model(args.checkpoint)
        text = read_text_file(args.text_file)
        if len(text) < 2:
            raise ValueError(f"{args.text_file} has fewer than 2 characters to score")
        bpc = model.bits_per_char(text)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    result = {"checkpoint": str(args.checkpoint), "text_file": str(args.text_file),
              "chars": len(text), "tokens": len(model.tokenizer.encode(text)),
              "tokenizer": model.tokenizer.name, "bits_per_char": bpc}
    print(json.dumps(result, indent=1) if args.json
          else f"{bpc:.4f} bits per character ({len(text):,} characters of {args.text_file}, "
               f"{model.tokenizer.name} tokenizer)")
    return 0


def _generate(args: argparse.Namespace) -> int:
    import torch

    try:
        model = _load_text_model(args.checkpoint)
        ids = model.sample(1, generator=torch.Generator().manual_seed(args.seed),
                           prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    print(model.tokenizer.decode(ids[0].tolist()))
    return 0


def _save_npz(path: Path, **arrays: Tensor) -> None:
    """Write ``arrays`` to ``path`` atomically (beside it, then renamed over it)."""
    import numpy as np

    from aigc_course.checkpoint import atomic_write

    with atomic_write(path) as scratch, scratch.open("wb") as file:   # a file: no suffix added
        np.savez(file, allow_pickle=True,
                 **{k: v.detach().cpu().numpy() for k, v in arrays.items()})


def _sample(args: argparse.Namespace) -> int:
    try:
        if args.n < 1:
            raise ValueError(f"--n must be >= 1, got {args.n}")
        kind, model = _load_image_model(args.checkpoint)
        options = {k: getattr(args, k) for k in ("steps", "guidance", "sampler")
                   if getattr(args, k) is not None}
        kinds.check_options(kind, options)
        images, labels, _ = kinds.draw(model, args.n, label=args.label, seed=args.seed,
                                       **options)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    _save_npz(args.out, images=images.float(), labels=labels.long())
    print(json.dumps({"kind": kind.name, "n": len(images), "shape": list(images.shape),
                      "out": str(args.out)}))
    return 0


def _compress(args: argparse.Namespace) -> int:
    from aigc_course.compress.methods import compress_checkpoint

    options = {k: getattr(args, k) for k in ("sparsity", "keep", "width", "steps", "start",
                                             "round_steps", "seed")}
    try:
        record = compress_checkpoint(args.checkpoint, args.method, args.out,
                                     progress=not args.quiet, **options)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    print(json.dumps(record, indent=1))
    return 0


def _export(args: argparse.Namespace) -> int:
    from aigc_course.deploy.export import export_checkpoint

    try:
        report = export_checkpoint(args.checkpoint, args.format, args.out)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    print(json.dumps(report.as_dict(), indent=1))
    return 0


def _calibrate_drift(args: argparse.Namespace) -> int:
    from aigc_course.deploy.drift import calibrate
    from aigc_course.deploy.service import Served

    try:
        if args.out.resolve() == args.checkpoint.resolve():
            raise ValueError("--out must not be the checkpoint itself")
        served = Served.load(args.checkpoint)
        calibration = calibrate(served.model, dataset=served.dataset or "digits",
                                window_size=args.window, windows=args.windows,
                                false_alarm_rate=args.rate, seed=args.seed,
                                description=f"{args.checkpoint} ({served.sha256[:12]})")
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    calibration.save(args.out)
    print(json.dumps({"out": str(args.out), "window": args.window, "windows": args.windows,
                      "false_alarm_rate": args.rate}))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from aigc_course.deploy.server import serve
    from aigc_course.deploy.service import ServeConfig, Served

    try:
        config = ServeConfig(str(args.checkpoint), max_batch=args.max_batch,
                             max_wait_ms=args.max_wait_ms, max_n=args.max_n,
                             max_queue=args.queue, max_steps=args.max_steps,
                             max_new_tokens=args.max_new_tokens,
                             threads=args.threads, device=args.device,
                             drift=None if args.drift is None else str(args.drift))
        served = Served.load(args.checkpoint, args.device)   # refuse a bad checkpoint now
        if args.drift is not None:
            if served.text:
                raise ValueError("--drift watches images; this is a text model")
            if not args.drift.is_file():
                raise FileNotFoundError(f"no drift calibration file {args.drift}")
            from aigc_course.deploy.drift import load_monitor

            load_monitor(args.drift, served.model)           # a foreign file: refused now
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    print(f"serving {args.checkpoint} on http://{args.host}:{args.port} "
          f"({args.workers} worker{'s' if args.workers > 1 else ''}); Ctrl-C stops",
          file=sys.stderr, flush=True)
    serve(config, host=args.host, port=args.port, workers=args.workers,
          log_level=args.log_level)
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    from aigc_course.data.registry import load_images
    from aigc_course.metrics.image import psnr, ssim

    try:
        kind, model = _load_image_model(args.checkpoint)
        if kind.reconstruct is None:
            raise ValueError(f"a {kind.name!r} model cannot reconstruct images")
        x, y = load_images(args.dataset, args.split, image_size=model.config.image_size,
                           max_items=args.n)
        x_hat = kind.reconstruct(model, x, y)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    if args.out is not None:
        _save_npz(args.out, originals=x, images=x_hat, labels=y)
    print(json.dumps({"psnr": float(psnr(x_hat, x).mean()), "ssim": float(ssim(x_hat, x).mean()),
                      "n": len(x)}))
    return 0


_METRIC_LINES = (("fid", "judge FID (lower is better)"), ("kid", "KID"),
                 ("inception_score", "Inception Score (judge logits)"),
                 ("precision", "precision"), ("recall", "recall"),
                 ("recognisability", "recognisability"), ("coverage", "class coverage"),
                 ("label_accuracy", "label accuracy"), ("inception_fid", "Inception FID"))


def evaluation_report(checkpoint: Path, n: int = 1000, seed: int = 0,
                      dataset: str | None = None, inception: bool = False,
                      **options: Any) -> dict[str, object]:
    """The whole metric report of a model checkpoint against its own dataset.

    What ``aigc-course evaluate`` prints: :func:`aigc_course.train.report.model_report`
    of ``n`` samples against the train split of the dataset recorded in the checkpoint.

    Raises:
        FileNotFoundError: no file. ValueError: a corrupt, foreign or non-model file, a
            checkpoint that records no dataset (pass ``dataset``), or bad options.
    """
    from aigc_course.checkpoint import read_checkpoint
    from aigc_course.train.report import model_report

    if n < 10:
        raise ValueError(f"--n must be at least 10 (the Inception Score's splits), got {n}")
    kind, model = _load_image_model(checkpoint)
    metadata = read_checkpoint(checkpoint).get("metadata", {})
    dataset = dataset or metadata.get("dataset")
    if not dataset:
        raise ValueError(f"{checkpoint} records no training dataset; pass --dataset")
    kinds.check_options(kind, options)
    report = model_report(model, n, dataset=str(dataset), seed=seed, inception=inception,
                          **options)
    return {"checkpoint": str(checkpoint), "kind": kind.name,
            "conditional": bool(model.conditional), "dataset": dataset,
            "image_size": metadata.get("image_size"), "seed": seed,
            "sampling": options, **report}


def _format_report(report: dict[str, object]) -> str:
    reference = report["reference"]
    assert isinstance(reference, dict)
    lines = [f"checkpoint  {report['checkpoint']} (kind {report['kind']}, "
             f"{'conditional' if report['conditional'] else 'unconditional'}, trained on "
             f"{report['dataset']})",
             f"reference   {reference['text']}",
             f"samples     n = {report['n']}, seed {report['seed']}, "
             f"options {report['sampling'] or 'default'}, "
             f"{float(report['sample_seconds']):.1f} s to sample"]  # type: ignore[arg-type]
    for key, label in _METRIC_LINES:
        if key in report:
            value = report[key]
            extra = f" +- {report['kid_std']:.2f}" if key == "kid" else ""
            lines.append(f"{label:<32}{value:10.4f}{extra}")
    per_class = report.get("label_accuracy_per_class")
    if per_class:
        assert isinstance(per_class, dict)
        lines.append("label accuracy per class        " + "  ".join(
            f"{c}: {v:.2f}" for c, v in per_class.items()))
    if "inception_note" in report:
        lines.append(f"Inception features: {report['inception_note']}")
    return "\n".join(lines)


def _evaluate(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in ("steps", "guidance", "sampler")
               if getattr(args, k) is not None}
    try:
        report = evaluation_report(args.checkpoint, args.n, args.seed, args.dataset,
                                   args.inception, **options)
    except (ValueError, FileNotFoundError, DatasetUnavailableError) as error:
        return _fail(error)
    print(json.dumps(report, indent=1, default=str) if args.json else _format_report(report))
    return 0


def _card(args: argparse.Namespace) -> int:
    from aigc_course.checkpoint import atomic_write
    from aigc_course.reports.model_card import make_model_card

    try:
        card = make_model_card(args.checkpoint, n=args.n, seed=args.seed, steps=args.steps,
                               guidance=args.guidance)
    except (ValueError, FileNotFoundError, DatasetUnavailableError) as error:
        return _fail(error)
    markdown = card.to_markdown()
    if args.out is None:
        print(markdown)
    else:
        with atomic_write(args.out) as scratch:
            Path(scratch).write_text(markdown + "\n", encoding="utf-8")
        print(f"wrote the model card of {args.checkpoint} to {args.out}")
    return 0


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(part) for part in text.split(","))
    except ValueError as error:
        raise ValueError(f"--shape must be C,H,W (e.g. 1,16,16), got {text!r}") from error
    return c, h, w


def _watermark(args: argparse.Namespace) -> int:
    from scipy.stats import norm

    from aigc_course.provenance import spread_spectrum

    try:
        if args.action == "keygen":
            key = spread_spectrum.make_key(_parse_shape(args.shape), strength=args.strength,
                                           seed=args.seed)
            key.save(args.out)
            print(f"wrote a spread-spectrum key for images {key.shape} (strength "
                  f"{key.strength}) to {args.out}; keep it secret: it detects and forges")
            return 0
        key = spread_spectrum.SpreadSpectrumKey.load(args.key)
        if args.action == "embed":
            spread_spectrum.embed_file(args.source, args.out, key)
            print(f"marked {args.source} into {args.out}")
            return 0
        if not 0 < args.fpr < 1:
            raise ValueError(f"--fpr must be in (0, 1), got {args.fpr}")
        threshold = float(norm.isf(args.fpr))          # z is N(0, 1) on clean images
        rows = spread_spectrum.detect_file(args.source, key, threshold)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    if args.json:
        print(json.dumps({"threshold": threshold, "fpr": args.fpr, "images": rows}, indent=1))
    else:
        marked = sum(row["marked"] for row in rows)
        print(f"{marked} of {len(rows)} images marked (z > {threshold:.2f}, a false-positive "
              f"rate of {args.fpr:g} on clean images)")
        for row in rows[:20]:
            print(f"  image {row['index']}: z = {row['z']:.2f}"
                  f"{'  marked' if row['marked'] else ''}")
    return 0


def _max_new_tokens() -> int:
    from aigc_course.train.gpt import MAX_NEW_TOKENS

    return MAX_NEW_TOKENS


def build_parser() -> argparse.ArgumentParser:
    """The ``aigc-course`` argument parser; chapters add sub-commands here."""
    parser = argparse.ArgumentParser(
        prog="aigc-course", description="Tools of the course 'Generative AI: from data to "
        "business value'.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="print a dataset's data card")
    data.add_argument("name", nargs="?", help="dataset name (see --list)")
    data.add_argument("--list", action="store_true", help="list the dataset names")
    data.add_argument("--json", action="store_true", help="print the card as JSON")
    data.set_defaults(func=_data)

    judge = sub.add_parser("judge", help="retrain the judge of a dataset")
    judge.add_argument("--dataset", default="digits",
                       help="digits, mnist5k, shapes (shipped), mnist, fashion_mnist, cifar10")
    judge.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    judge.add_argument("--seed", type=int, default=0)
    judge.add_argument("--out", type=Path, default=None,
                       help="where to save (default: the shipped or cached judge's file)")
    judge.set_defaults(func=_judge)

    train = sub.add_parser("train", help="train a model and save a checkpoint",
                           epilog="data parallel: torchrun --standalone --nproc_per_node=N "
                                  "-m aigc_course train KIND ... (gloo on CPU, NCCL on CUDA; "
                                  "--steps and the batch are global)")
    train.add_argument("kind", choices=kinds.names(), help="the model kind")
    train.add_argument("--dataset", default=None, help="default: the profile's dataset")
    train.add_argument("--image-size", type=int, default=None,
                       help="default: the profile's image size")
    train.add_argument("--conditional", action="store_true", help="class-conditional model")
    train.add_argument("--profile", default="cpu", help="smoke, cpu, gpu or auto")
    train.add_argument("--steps", type=int, default=None, help="default: the profile's")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--text-file", type=Path, default=None,
                       help="gpt: train on this UTF-8 file (default: the profile's corpus)")
    train.add_argument("--tokenizer", choices=("char", "bpe"), default=None,
                       help="gpt: the tokenizer (default: the profile's, char)")
    train.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    train.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                       help="save the full training state every N steps (default: never)")
    train.add_argument("--checkpoint-dir", type=Path, default=None,
                       help="where training states go (default: OUT.states/)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the newest good state (same settings)")
    train.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                       help="autocast precision of the forward pass (fp16: with a gradient "
                            "scaler, for GPUs without bf16)")
    train.add_argument("--compile", action="store_true", help="wrap networks in torch.compile")
    train.add_argument("--channels-last", action="store_true",
                       help="NHWC memory format for image networks")
    train.set_defaults(func=_train)

    score = sub.add_parser("score", help="bits per character of a text file under a gpt model")
    score.add_argument("checkpoint", type=Path)
    score.add_argument("--text-file", type=Path, required=True)
    score.add_argument("--json", action="store_true", help="print the result as JSON")
    score.set_defaults(func=_score)

    gen = sub.add_parser("generate", help="continue a prompt with a gpt model")
    gen.add_argument("checkpoint", type=Path)
    gen.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    gen.add_argument("--max-new-tokens", type=int, default=300,
                     help=f"tokens to add (at most {_max_new_tokens()})")
    gen.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    gen.add_argument("--top-k", type=int, default=None, help="sample among the k best tokens")
    gen.add_argument("--top-p", type=float, default=None,
                     help="sample among the smallest set of tokens with mass >= p, in (0, 1]")
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=_generate)

    sample = sub.add_parser("sample", help="draw samples from a checkpoint into a .npz")
    sample.add_argument("checkpoint", type=Path)
    sample.add_argument("--n", type=int, default=500)
    sample.add_argument("--label", type=int, default=None, help="class (conditional models)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--steps", type=int, default=None,
                        help="sampling steps (diffusion; default 50, or a distilled "
                             "student's own)")
    sample.add_argument("--sampler", default=None, choices=["ddim", "dpm++2m"],
                        help="diffusion sampler (default ddim)")
    sample.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale w (conditional diffusion)")
    sample.add_argument("--out", type=Path, required=True, help="the .npz to write")
    sample.set_defaults(func=_sample)

    ev = sub.add_parser("evaluate", help="every metric of a checkpoint against its dataset")
    ev.add_argument("checkpoint", type=Path)
    ev.add_argument("--n", type=int, default=1000, help="samples (FID is biased on few)")
    ev.add_argument("--steps", type=int, default=None, help="sampling steps (diffusion)")
    ev.add_argument("--sampler", default=None, choices=["ddim", "dpm++2m"],
                    help="diffusion sampler (default ddim)")
    ev.add_argument("--guidance", type=float, default=None,
                    help="classifier-free guidance scale w (conditional diffusion)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--dataset", default=None,
                    help="default: the dataset recorded in the checkpoint")
    ev.add_argument("--inception", action="store_true",
                    help="also Inception-v3 FID (needs its weights; says so when absent)")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(func=_evaluate)

    card = sub.add_parser("card", help="a model card of a checkpoint, measured now (Markdown)")
    card.add_argument("checkpoint", type=Path)
    card.add_argument("--n", type=int, default=1000, help="samples scored (FID is biased on few)")
    card.add_argument("--steps", type=int, default=None, help="sampling steps (diffusion)")
    card.add_argument("--guidance", type=float, default=None,
                      help="classifier-free guidance scale w (conditional diffusion)")
    card.add_argument("--seed", type=int, default=0)
    card.add_argument("--out", type=Path, default=None, help="write it here (default: print)")
    card.set_defaults(func=_card)

    mark = sub.add_parser("watermark", help="an invisible spread-spectrum mark on image files")
    actions = mark.add_subparsers(dest="action", required=True)
    keygen = actions.add_parser("keygen", help="make a secret key for images of one shape")
    keygen.add_argument("--shape", default="1,16,16", help="C,H,W of the images (1,16,16)")
    keygen.add_argument("--strength", type=float, default=0.1,
                        help="the mark's pixel RMS on [-1, 1] (0.1: about 27 dB PSNR)")
    keygen.add_argument("--seed", type=int, default=None, help="default: a secret random seed")
    keygen.add_argument("--out", type=Path, required=True)
    embed = actions.add_parser("embed", help="mark a PNG/JPEG image or an .npz of samples")
    embed.add_argument("source", type=Path)
    embed.add_argument("--key", type=Path, required=True)
    embed.add_argument("--out", type=Path, required=True)
    detect = actions.add_parser("detect", help="the detector's z of each image in a file")
    detect.add_argument("source", type=Path)
    detect.add_argument("--key", type=Path, required=True)
    detect.add_argument("--fpr", type=float, default=1e-3,
                        help="false-positive rate on clean images that sets the threshold")
    detect.add_argument("--json", action="store_true")
    mark.set_defaults(func=_watermark)

    comp = sub.add_parser("compress", help="prune, distil or quantise a checkpoint")
    comp.add_argument("checkpoint", type=Path)
    comp.add_argument("--method", required=True,
                      help="gan: magnitude, channels, student, int8; ddpm: steps, int8")
    comp.add_argument("--sparsity", type=float, help="magnitude: share of weights set to 0")
    comp.add_argument("--keep", type=float, help="channels: share of each level's channels")
    comp.add_argument("--width", type=float, help="student: channels relative to the teacher")
    comp.add_argument("--steps", type=int,
                      help="channels, student: distillation steps; ddpm steps: the student's "
                           "sampling steps")
    comp.add_argument("--start", type=int, help="ddpm steps: the teacher's sampling steps")
    comp.add_argument("--round-steps", type=int, help="ddpm steps: training steps per halving")
    comp.add_argument("--seed", type=int)
    comp.add_argument("--quiet", action="store_true", help="no progress bar")
    comp.add_argument("--out", type=Path, required=True, help="the checkpoint to write")
    comp.set_defaults(func=_compress)

    exp = sub.add_parser("export", help="export a checkpoint's network to .pt2 or ONNX")
    exp.add_argument("checkpoint", type=Path)
    exp.add_argument("--format", required=True, choices=["pt2", "onnx"])
    exp.add_argument("--out", type=Path, required=True, help="the file to write")
    exp.set_defaults(func=_export)

    cal = sub.add_parser("calibrate-drift",
                         help="fit the drift monitor on a healthy model (for serve --drift)")
    cal.add_argument("checkpoint", type=Path)
    cal.add_argument("--window", type=int, default=256, help="samples per window")
    cal.add_argument("--windows", type=int, default=200, help="healthy windows fitted")
    cal.add_argument("--rate", type=float, default=0.01,
                     help="false alarms per healthy window")
    cal.add_argument("--seed", type=int, default=10000)
    cal.add_argument("--out", type=Path, required=True, help="the calibration JSON to write")
    cal.set_defaults(func=_calibrate_drift)

    srv = sub.add_parser("serve", help="serve a checkpoint over HTTP (FastAPI, batched)")
    srv.add_argument("checkpoint", type=Path)
    srv.add_argument("--host", default="127.0.0.1",
                     help="the address to listen on (default: loopback only)")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--workers", type=int, default=1,
                     help="processes sharing the port (metrics merged across them)")
    srv.add_argument("--max-batch", type=int, default=64,
                     help="samples per forward pass (1: no batching)")
    srv.add_argument("--max-wait-ms", type=float, default=0.0,
                     help="how long a batch waits for more requests (0: it takes those "
                          "waiting when the model frees up)")
    srv.add_argument("--max-n", type=int, default=64, help="samples one request may ask for")
    srv.add_argument("--queue", type=int, default=256,
                     help="requests waiting before 503 Retry-After")
    srv.add_argument("--max-steps", type=int, default=250,
                     help="sampling steps one request may ask for (diffusion)")
    srv.add_argument("--max-new-tokens", type=int, default=256,
                     help="tokens one text request may ask for (a gpt model)")
    srv.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    srv.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                     help="where the network runs (auto: CUDA when available)")
    srv.add_argument("--drift", type=Path, default=None,
                     help="a drift-monitor calibration file (aigc_course.deploy.drift)")
    srv.add_argument("--log-level", default="warning",
                     choices=["critical", "error", "warning", "info", "debug"])
    srv.set_defaults(func=_serve)

    rec = sub.add_parser("reconstruct", help="reconstruct real images; print PSNR and SSIM")
    rec.add_argument("checkpoint", type=Path)
    rec.add_argument("--dataset", default="digits")
    rec.add_argument("--split", default="test", choices=["train", "val", "test"])
    rec.add_argument("--n", type=int, default=None, help="at most this many (default: all)")
    rec.add_argument("--out", type=Path, default=None, help="optional .npz to write")
    rec.set_defaults(func=_reconstruct)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `aigc-course data digits | head` closed the pipe: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

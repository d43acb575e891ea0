"""The command line: ``aigc-course`` (also ``python -m aigc_course``).

* ``aigc-course data NAME`` -- print the data card of a dataset (``--list`` lists them).
* ``aigc-course judge [--epochs E] [--seed S] [--out PATH]`` -- retrain the digits judge
  (by default overwriting the shipped checkpoint).

* ``aigc-course train KIND --dataset digits --image-size 16 [--conditional] --profile cpu
  --out ckpt.pt`` -- train a model of a registered kind (:data:`MODEL_KINDS`) and save it.
* ``aigc-course sample CKPT --n 500 [--label K] [--steps S] [--guidance W] --out s.npz``
  -- draw samples from any checkpoint (``--steps``/``--guidance``: diffusion only); the
  file holds ``images`` ``(N, C, H, W)`` in ``[-1, 1]`` and ``labels`` (``-1`` for an
  unconditional model).
* ``aigc-course reconstruct CKPT [--split test] [--n 16] [--out rec.npz]`` -- encode and
  decode real images (kinds that can), printing PSNR and SSIM.

Registered kinds are those of :data:`aigc_course.kinds.KINDS` (``gan`` of chapter 03,
``vae`` of 04, ``ddpm`` of 05): ``train``, ``sample`` and ``reconstruct`` are written
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

from aigc_course import kinds

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
    from aigc_course.train.judge import retrain

    metrics = retrain(out=args.out, epochs=args.epochs, seed=args.seed)
    print(json.dumps(metrics, indent=1))
    return 0


def _fail(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 2


def _train(args: argparse.Namespace) -> int:
    try:
        metrics = kinds.train_and_save(args.kind, args.out, args.profile, dataset=args.dataset,
                                       image_size=args.image_size,
                                       conditional=args.conditional, steps=args.steps,
                                       seed=args.seed)
    except ValueError as error:
        return _fail(error)
    print(json.dumps(metrics, indent=1))
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
        kind, model = kinds.load_model(args.checkpoint)
        options = {k: getattr(args, k) for k in ("steps", "guidance")
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


def _reconstruct(args: argparse.Namespace) -> int:
    from aigc_course.data.registry import load_images
    from aigc_course.metrics.image import psnr, ssim

    try:
        kind, model = kinds.load_model(args.checkpoint)
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

    judge = sub.add_parser("judge", help="retrain the digits judge")
    judge.add_argument("--epochs", type=int, default=40)
    judge.add_argument("--seed", type=int, default=0)
    judge.add_argument("--out", type=Path, default=None,
                       help="where to save (default: the shipped checkpoint)")
    judge.set_defaults(func=_judge)

    train = sub.add_parser("train", help="train a model and save a checkpoint")
    train.add_argument("kind", choices=kinds.names(), help="the model kind")
    train.add_argument("--dataset", default=None, help="default: the profile's dataset")
    train.add_argument("--image-size", type=int, default=None,
                       help="default: the profile's image size")
    train.add_argument("--conditional", action="store_true", help="class-conditional model")
    train.add_argument("--profile", default="cpu", help="smoke, cpu, gpu or auto")
    train.add_argument("--steps", type=int, default=None, help="default: the profile's")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    train.set_defaults(func=_train)

    sample = sub.add_parser("sample", help="draw samples from a checkpoint into a .npz")
    sample.add_argument("checkpoint", type=Path)
    sample.add_argument("--n", type=int, default=500)
    sample.add_argument("--label", type=int, default=None, help="class (conditional models)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--steps", type=int, default=None,
                        help="sampling steps (diffusion; default 50 DDIM steps)")
    sample.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale w (conditional diffusion)")
    sample.add_argument("--out", type=Path, required=True, help="the .npz to write")
    sample.set_defaults(func=_sample)

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

"""Chapter 06's GPT against nanoGPT's README CPU recipe, side by side: bits/char vs wall time.

What it measures
----------------
nanoGPT's README ("I only have a macbook") trains a 4-layer, 4-head, 128-wide character GPT
with context 64, batch 12, 2,000 iterations, ``--device=cpu --compile=False``, and reports
loss 1.88 on Shakespeare in about 3 minutes. This script runs that exact command and our
recipe (``aigc_course.train.gpt.train_gpt``) on the same corpus and split (our ``pydoc``
character split, written in nanoGPT's ``train.bin``/``val.bin``/``meta.pkl`` format into
``<nanogpt>/data/pydoc_char``), each as a fresh subprocess with ``OMP_NUM_THREADS`` (and
torch's threads) set to ``--threads`` (2), alternating over rounds (A B, B A, ...), since a
shared machine is noisy and one run is not a measurement.

* **Wall time** is the whole training run, launch to end, subtracting nothing: Python and
  torch start-up, data loading, every evaluation (nanoGPT's 20 train + 20 val batches of
  12 x 64 every 250 iterations, its checkpoint writes) and ours' evaluations. Ours
  evaluates at the same cadence (``steps // 8``: 8 evaluations plus the last step, as
  nanoGPT's 9 at 0, 250, ..., 2000) on the whole validation split (24,877 predictions in
  13 forward passes of 32 x 64: about nanoGPT's 2 x 20 x 12 x 64 = 30,720 per evaluation),
  so neither is penalised and ours' curve is already in the final metric. Ours' wall time
  ends when ``train_gpt`` returns (the final scoring below is outside it for both).
* **Bits per character** of both is scored by OUR :func:`~aigc_course.train.gpt.
  bits_per_char` on the whole validation split (consecutive windows of 64). nanoGPT's
  weights come from its ``ckpt.pt`` (run with ``--always_save_checkpoint=True``, so the
  last evaluation's weights, after 2,000 updates, are saved whether or not val improved),
  loaded with its own ``model.py``; each intermediate checkpoint is copied as it is written,
  so nanoGPT's curve is scored by our function too (its own 20-batch estimate is kept as
  ``nano_val_bpc``). nanoGPT's wall-clock curve comes from timestamping its stdout lines as
  they arrive.
* **Ratios**, within a round: ours' time to reach nanoGPT's final val bpc (linear
  interpolation on ours' eval curve) over nanoGPT's wall time (goal: <= 0.5); ours' val bpc
  at nanoGPT's wall time (ours' final if it finished earlier) minus nanoGPT's final; and
  nanoGPT's val bpc at ours' wall time (interpolated on its curve) minus ours' final.

How to run
----------
nanoGPT is not a dependency; fetch it separately (``git clone
https://github.com/karpathy/nanoGPT /tmp/nanogpt``; it needs only torch and numpy, which
our venv has), then::

    .venv/bin/python tests/benchmarks/nanogpt_cpu.py --nanogpt /tmp/nanogpt --rounds 2 \\
        --out results.json

``--only ours`` (or ``nanogpt``) runs one side, e.g. to try a recipe with ``--ours
'{"train": {"lr": 0.004}}'`` (JSON overriding :data:`OURS`), and ``--reference
results.json`` takes nanoGPT's figures for the ratios from an earlier run. The script is
not collected by pytest (no ``test_`` prefix) and takes several minutes per round.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import math
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATASET = "pydoc_char"
#: nanoGPT README's CPU command, verbatim (run from the nanoGPT checkout)
NANOGPT_README = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
                  "--eval_iters=20", "--log_interval=1", "--block_size=64", "--batch_size=12",
                  "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
                  "--lr_decay_iters=2000", "--dropout=0.0"]
#: what we add: our data, its config's own eval cadence, the final weights saved
NANOGPT_EXTRA = [f"--dataset={DATASET}", "--eval_interval=250",
                 "--always_save_checkpoint=True"]
#: our recipe: GPTConfig and GPTTrainConfig keywords (eval_every: None = steps // 8)
OURS: dict[str, Any] = {
    "model": {"block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0,
              "bias": False, "attention": "sdpa"},
    "train": {"steps": 1300, "batch_size": 16, "lr": 3e-3, "min_lr_ratio": 0.1,
              "warmup": 50, "weight_decay": 0.1, "betas": [0.9, 0.99], "grad_clip": 1.0,
              "eval_every": None, "eval_tokens": None, "seed": 0},
}
EVALS = 8  # evaluations before the last step's, as nanoGPT's 250, 500, ..., 1750 (and 0)


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_nanogpt_data(nanogpt: Path) -> Path:
    """Our pydoc char split as nanoGPT's ``train.bin``, ``val.bin`` (uint16) and ``meta.pkl``."""
    import numpy as np

    from aigc_course.train.gpt import prepare_text

    data = prepare_text("pydoc", "char")
    folder = nanogpt / "data" / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        np.asarray(data.split(split).numpy(), dtype=np.uint16).tofile(folder / f"{split}.bin")
    chars = data.tokenizer.chars
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)),
            "stoi": {c: i for i, c in enumerate(chars)}}
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump(meta, f)
    return folder


def _stream(process: subprocess.Popen, t0: float, on_line: Any) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        on_line(time.perf_counter() - t0, line.rstrip("\n"))


# --------------------------------------------------------------------------- nanoGPT

def run_nanogpt(nanogpt: Path, out_dir: Path, threads: int) -> dict[str, Any]:
    """nanoGPT's README CPU command on our split; stdout timestamped as it arrives."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    command = [sys.executable, "train.py", *NANOGPT_README, *NANOGPT_EXTRA,
               f"--out_dir={out_dir}"]
    evals: list[dict[str, float]] = []
    iters: list[list[float]] = []
    saved: list[tuple[int, Path]] = []
    pending: list[int] = []                          # a save announced, not yet finished
    tail: list[str] = []
    step_re = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
    iter_re = re.compile(r"^iter (\d+): loss ([\d.]+)")

    def keep_pending() -> None:                      # torch.save ended before this line
        while pending:
            it = pending.pop()
            copy_to = out_dir / f"ckpt_{it}.pt"
            shutil.copyfile(out_dir / "ckpt.pt", copy_to)
            saved.append((it, copy_to))

    def on_line(t: float, line: str) -> None:
        tail.append(line)
        del tail[:-20]
        keep_pending()
        if m := step_re.match(line):
            evals.append({"t": t, "step": int(m[1]), "train_loss": float(m[2]),
                          "val_loss": float(m[3])})
        elif m := iter_re.match(line):
            iters.append([t, int(m[1]), float(m[2])])
        elif line.startswith("saving checkpoint") and evals:
            pending.append(int(evals[-1]["step"]))

    t0 = time.perf_counter()
    process = subprocess.Popen(command, cwd=nanogpt, env=thread_env(threads), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _stream(process, t0, on_line)
    rc = process.wait()
    wall = time.perf_counter() - t0
    if rc:
        raise RuntimeError(f"nanoGPT failed ({rc}):\n" + "\n".join(tail))
    keep_pending()
    return {"command": " ".join(command[1:]), "wall_s": wall, "evals": evals,
            "iters": iters[::10] + ([iters[-1]] if len(iters) % 10 != 1 else []),
            "checkpoints": saved}


def _load_nanogpt_model(nanogpt: Path) -> Any:
    spec = importlib.util.spec_from_file_location("nanogpt_model", nanogpt / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def score_nanogpt(nanogpt: Path, run: dict[str, Any], threads: int) -> None:
    """Each saved checkpoint of ``run`` scored by our ``bits_per_char`` on the whole val split."""
    import torch

    from aigc_course.train.gpt import bits_per_char, prepare_text, token_chars

    torch.set_num_threads(threads)
    module = _load_nanogpt_model(nanogpt)
    data = prepare_text("pydoc", "char")
    chars = token_chars(data.tokenizer)

    class Scored(torch.nn.Module):              # nanoGPT's GPT as our bits_per_char wants it
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, None, None]:
            logits, _ = self.inner(idx, torch.zeros_like(idx))  # targets: logits everywhere
            return logits, None, None

    times = {int(e["step"]): e["t"] for e in run["evals"]}
    curve = []
    for it, path in sorted(run.pop("checkpoints")):
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        with contextlib.redirect_stdout(io.StringIO()):     # its "number of parameters"
            gpt = module.GPT(module.GPTConfig(**checkpoint["model_args"]))
        gpt.load_state_dict({k.removeprefix("_orig_mod."): v
                             for k, v in checkpoint["model"].items()})
        bpc = bits_per_char(Scored(gpt), data.val, chars)
        curve.append({"t": times[it], "step": it, "val_bpc": bpc})
        path.unlink()
    nano_eval = {int(e["step"]): e["val_loss"] / math.log(2) for e in run["evals"]}
    for point in curve:
        point["nano_val_bpc"] = nano_eval[point["step"]]
    if not curve or curve[-1]["step"] != 2000:
        raise RuntimeError(f"nanoGPT's last checkpoint is not iteration 2000: {curve}")
    run["curve"] = curve
    run["final_val_bpc"] = curve[-1]["val_bpc"]
    run["nano_final_val_loss"] = run["evals"][-1]["val_loss"]


# --------------------------------------------------------------------------- ours

def ours_recipe(overrides: dict[str, Any] | None) -> dict[str, Any]:
    recipe = copy.deepcopy(OURS)
    for part, values in (overrides or {}).items():
        recipe[part].update(values)
    train = recipe["train"]
    if train.get("eval_every") is None:
        train["eval_every"] = max(1, train["steps"] // EVALS)
    return recipe


def worker_ours(recipe: dict[str, Any], threads: int) -> None:
    """The child: train ours, mark the start and end of training on stdout, print results."""
    import torch

    torch.set_num_threads(threads)
    from aigc_course.models.gpt import GPTConfig
    from aigc_course.train.gpt import (
        GPTTrainConfig,
        bits_per_char,
        prepare_text,
        token_chars,
        train_gpt,
    )

    data = prepare_text("pydoc", "char")
    model = GPTConfig(vocab_size=data.tokenizer.vocab_size, **recipe["model"])
    train = dict(recipe["train"], betas=tuple(recipe["train"]["betas"]), progress=False)
    config = GPTTrainConfig(**train)
    print("TRAIN-START", flush=True)
    lm, history = train_gpt(data, model, config)
    print("TRAIN-END", flush=True)
    final = bits_per_char(lm.gpt, data.val, token_chars(data.tokenizer))
    result = {"final_val_bpc": final, "params": lm.gpt.num_params(),
              "threads": torch.get_num_threads(), "val_step": history["val_step"],
              "val_bpc": history["val_bpc"], "val_seconds": history["val_seconds"],
              "loss": history["loss"][::10], "seconds": history["seconds"][::10]}
    print("RESULT " + json.dumps(result), flush=True)


def run_ours(recipe: dict[str, Any], threads: int) -> dict[str, Any]:
    marks: dict[str, float] = {}
    result: dict[str, Any] = {}
    tail: list[str] = []

    def on_line(t: float, line: str) -> None:
        tail.append(line)
        del tail[:-20]
        if line in ("TRAIN-START", "TRAIN-END"):
            marks[line] = t
        elif line.startswith("RESULT "):
            result.update(json.loads(line[len("RESULT "):]))

    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "ours",
               "--threads", str(threads), "--ours", json.dumps(recipe)]
    t0 = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=thread_env(threads), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _stream(process, t0, on_line)
    if process.wait() or not result:
        raise RuntimeError("ours failed:\n" + "\n".join(tail))
    start = marks["TRAIN-START"]
    curve = [{"t": start + s, "step": int(step), "val_bpc": bpc} for step, bpc, s in
             zip(result["val_step"], result["val_bpc"], result["val_seconds"], strict=True)]
    return {"recipe": recipe, "wall_s": marks["TRAIN-END"], "startup_s": start,
            "curve": curve, "final_val_bpc": result["final_val_bpc"],
            "params": result["params"], "threads": result["threads"],
            "train_loss": [[start + s, loss] for s, loss in
                           zip(result["seconds"], result["loss"], strict=True)]}


# --------------------------------------------------------------------------- ratios

def time_to_reach(curve: list[dict[str, Any]], target: float) -> float | None:
    """First wall time the curve's bpc is <= ``target`` (linear between points)."""
    previous = None
    for point in curve:
        if point["val_bpc"] <= target:
            if previous is None:
                return point["t"]
            (t1, b1), (t2, b2) = previous, (point["t"], point["val_bpc"])
            return t1 + (b1 - target) / (b1 - b2) * (t2 - t1)
        previous = (point["t"], point["val_bpc"])
    return None


def bpc_at(curve: list[dict[str, Any]], t: float) -> float | None:
    """The curve's bpc at wall time ``t`` (linear; its last value once finished; None before
    its first point)."""
    if t < curve[0]["t"]:
        return None
    for a, b in zip(curve, curve[1:], strict=False):
        if a["t"] <= t <= b["t"]:
            return a["val_bpc"] + (t - a["t"]) / (b["t"] - a["t"]) * (b["val_bpc"] - a["val_bpc"])
    return curve[-1]["val_bpc"]


def compare(nano: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    reach = time_to_reach(ours["curve"], nano["final_val_bpc"])
    ours_at = bpc_at(ours["curve"], nano["wall_s"])
    nano_at = bpc_at(nano["curve"], ours["wall_s"])
    return {"ours_time_to_nano_final_s": reach,
            "time_ratio": None if reach is None else reach / nano["wall_s"],
            "wall_ratio": ours["wall_s"] / nano["wall_s"],
            "ours_bpc_at_nano_wall": ours_at,
            "ours_minus_nano_at_nano_wall": None if ours_at is None
            else ours_at - nano["final_val_bpc"],
            "nano_bpc_at_ours_wall": nano_at,
            "ours_minus_nano_at_ours_wall": None if nano_at is None
            else ours["final_val_bpc"] - nano_at}


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    print(f"\n{'round':>5} {'run':>8} {'val bpc':>8} {'wall s':>7}   {'reach/nano':>10} "
          f"{'wall/nano':>9} {'ours@nano_wall':>14} {'nano@ours_wall':>14}")
    for r in rounds:
        for name in r["order"]:
            run = r[name]
            line = f"{r['round']:>5} {name:>8} {run['final_val_bpc']:8.4f} {run['wall_s']:7.1f}"
            if name == "ours" and "ratios" in r:
                q = r["ratios"]
                line += (f"   {_f(q['time_ratio'], '10.3f')} {q['wall_ratio']:9.3f} "
                         f"{_f(q['ours_minus_nano_at_nano_wall'], '+14.4f')} "
                         f"{_f(q['ours_minus_nano_at_ours_wall'], '+14.4f')}")
            print(line)
        rows.append(r)
    summary: dict[str, Any] = {}
    for name in ("nanogpt", "ours"):
        runs = [r[name] for r in rounds if name in r]
        if runs:
            summary[name] = {"final_val_bpc": statistics.median(x["final_val_bpc"] for x in runs),
                             "wall_s": statistics.median(x["wall_s"] for x in runs)}
    ratios = [r["ratios"] for r in rounds if "ratios" in r]
    for key in ("time_ratio", "wall_ratio", "ours_minus_nano_at_nano_wall",
                "ours_minus_nano_at_ours_wall"):
        values = [q[key] for q in ratios if q[key] is not None]
        if values:
            summary[key] = statistics.median(values)
    print("\nmedians:", json.dumps(summary, indent=1))
    print("reach/nano: ours' time to nanoGPT's final val bpc over nanoGPT's wall time; "
          "ours@nano_wall: ours' bpc at nanoGPT's wall time minus nanoGPT's final; "
          "nano@ours_wall: ours' final minus nanoGPT's bpc at ours' wall time "
          "(negative: ours better)")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nanogpt", type=Path, help="a checkout of karpathy/nanoGPT")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("nanogpt_cpu.json"))
    parser.add_argument("--only", choices=("nanogpt", "ours"))
    parser.add_argument("--ours", type=json.loads, default=None,
                        help="JSON overriding OURS, e.g. '{\"train\": {\"lr\": 0.004}}'")
    parser.add_argument("--reference", type=Path,
                        help="an earlier --out whose median nanoGPT run the ratios use")
    parser.add_argument("--worker", choices=("ours",), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_ours(args.ours, args.threads)
        return
    recipe = ours_recipe(args.ours)
    reference = None
    if args.reference:
        previous = json.loads(args.reference.read_text())
        nanos = sorted((r["nanogpt"] for r in previous["rounds"] if "nanogpt" in r),
                       key=lambda run: run["wall_s"])
        reference = nanos[len(nanos) // 2]
    if args.only != "ours":
        if args.nanogpt is None or not (args.nanogpt / "train.py").exists():
            parser.error("--nanogpt must name a checkout of nanoGPT (train.py, model.py)")
        write_nanogpt_data(args.nanogpt.resolve())
    names = [n for n in ("nanogpt", "ours") if args.only in (None, n)]
    rounds = []
    for i in range(args.rounds):
        order = names if i % 2 == 0 else names[::-1]
        r: dict[str, Any] = {"round": i, "order": order}
        for name in order:
            print(f"round {i}: {name} ...", flush=True)
            if name == "nanogpt":
                nanogpt = args.nanogpt.resolve()
                r[name] = run_nanogpt(nanogpt, nanogpt / f"out-bench-{i}", args.threads)
                score_nanogpt(nanogpt, r[name], args.threads)
            else:
                r[name] = run_ours(recipe, args.threads)
            print(f"  val bpc {r[name]['final_val_bpc']:.4f}, wall {r[name]['wall_s']:.1f} s",
                  flush=True)
            args.out.write_text(json.dumps({"rounds": [*rounds, r]}, indent=1))  # so far
        nano = r.get("nanogpt", reference)
        if nano is not None and "ours" in r:
            r["ratios"] = compare(nano, r["ours"])
        rounds.append(r)
        args.out.write_text(json.dumps({"rounds": rounds}, indent=1))
    summary = print_table(rounds)
    args.out.write_text(json.dumps({
        "rounds": rounds, "summary": summary, "threads": args.threads,
        "nanogpt_readme_command": "python train.py " + " ".join(NANOGPT_README),
        "nanogpt_extra_args": NANOGPT_EXTRA, "ours_recipe": recipe,
        "reference": str(args.reference) if args.reference else None}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Launching training runs as processes: killed and resumed, or data parallel (chapter 07).

What a student would type in a terminal, run from Python so the chapter can measure it:

* :func:`train_command` -- ``python -m aigc_course train KIND ...``, or with
  ``nproc > 1`` the same under ``torchrun --standalone --nproc_per_node=N`` (one
  machine, a free rendezvous port, gloo on CPU / NCCL on CUDA);
* :func:`kill_and_resume` -- start a run that saves its state every few steps, kill it
  with ``SIGKILL`` (no clean-up, no chance to flush: a pre-empted cloud machine or an
  out-of-memory kill), resume it with ``--resume``, and compare its final weights with an
  uninterrupted run's;
* :func:`ddp_comparison` -- the same run on 1 and on ``N`` processes with the same global
  batch: wall time and the largest weight difference.

Every process has a time limit (``timeout_s``), so a hang fails instead of blocking.
:data:`MULTI_NODE` is the command for several machines (not run here: one machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from aigc_course.checkpoint import read_checkpoint
from aigc_course.kinds import train_and_save
from aigc_course.train.engine import state_files
from aigc_course.utils import Timer, num_threads

#: Several machines: the same command on each node, one rendezvous endpoint (node 0).
MULTI_NODE = ("torchrun --nnodes=2 --nproc_per_node=8 --node-rank=$NODE_RANK "
              "--rdzv-backend=c10d --rdzv-endpoint=$HEAD_NODE:29500 --rdzv-id=$JOB_ID "
              "-m aigc_course train ddpm --profile gpu --out /shared/ddpm.pt "
              "--checkpoint-every 500 --checkpoint-dir /shared/ddpm.states --resume")


def train_command(kind: str, out: str | Path, *, profile: str = "smoke", steps: int,
                  seed: int = 0, nproc: int = 1, extra: Sequence[str] = ()) -> list[str]:
    """The command line of one training run (``nproc > 1``: under ``torchrun``)."""
    train = ["-m", "aigc_course", "train", kind, "--profile", profile, "--steps", str(steps),
             "--seed", str(seed), "--out", str(out), *extra]
    if nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={nproc}", *train]
    return [sys.executable, *train]


def _env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
                "TQDM_DISABLE": "1", **(extra or {})})
    return env


def run(command: Sequence[str], *, timeout_s: float = 300.0, threads: int = 1,
        env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` to the end (at most ``timeout_s``); its wall time and output.

    ``env`` adds to the environment (``threads`` sets ``OMP_NUM_THREADS``).

    Raises:
        RuntimeError: a non-zero exit (with the output's tail) or the time limit.
    """
    start = time.perf_counter()
    try:
        done = subprocess.run(list(command), capture_output=True, text=True,
                              timeout=timeout_s, env=_env(threads, env), check=False)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{' '.join(command[:6])} ... ran past {timeout_s} s") from error
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:8])} ... exited {done.returncode}:\n"
                           f"{(done.stdout + done.stderr)[-2000:]}")
    return {"seconds": seconds, "stdout": done.stdout, "stderr": done.stderr}


def max_weight_difference(a: str | Path, b: str | Path) -> float:
    """The largest absolute difference between two checkpoints' weights (0.0: identical)."""
    sa, sb = read_checkpoint(a)["state_dict"], read_checkpoint(b)["state_dict"]
    if sa.keys() != sb.keys():
        raise ValueError(f"{a} and {b} hold different networks")
    return max(((sa[k].double() - sb[k].double()).abs().max().item() if sa[k].numel() else 0.0)
               for k in sa)


def kill_and_resume(kind: str, folder: str | Path, *, profile: str = "smoke", steps: int,
                    every: int, kill_at: int, seed: int = 0, timeout_s: float = 300.0,
                    threads: int = 1, cpu: bool = False) -> dict[str, Any]:
    """Kill a run with ``SIGKILL`` once it has saved step ``kill_at``, resume it, compare.

    Two processes: the run saving every ``every`` steps, killed as soon as a state of
    step ``>= kill_at`` is on disk (it may be further along: it runs while we look), and
    the same command with ``--resume``; then the uninterrupted reference run, trained in
    this process on ``threads`` threads (the same code and thread count: the same bits).
    ``cpu`` hides the GPUs from the processes (:func:`process_setting`); the reference
    then trains on the profile's device here, so use it only where that is the CPU.

    Returns:
        ``killed_after`` (the newest state when it was killed), ``resumed_from``,
        ``identical`` (bit-identical weights), ``max_abs_diff``, and the seconds of each.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out, reference = folder / f"{kind}_resumed.pt", folder / f"{kind}_reference.pt"
    states = folder / f"{kind}.states"
    extra = ["--checkpoint-every", str(every), "--checkpoint-dir", str(states)]
    command = train_command(kind, out, profile=profile, steps=steps, seed=seed, extra=extra)
    start = time.perf_counter()
    hidden = {"CUDA_VISIBLE_DEVICES": ""} if cpu else None
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=_env(threads, hidden))
    killed_after = None
    try:
        while time.perf_counter() - start < timeout_s:
            saved = state_files(states)
            if saved and int(saved[0].name[5:13]) >= kill_at:
                process.send_signal(signal.SIGKILL)
                break
            if process.poll() is not None:
                tail = process.stderr.read()[-1500:].decode(errors="replace") \
                    if process.stderr else ""
                raise RuntimeError(f"the run ended before step {kill_at} was saved "
                                   f"(exit {process.returncode}): {tail}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"no state of step {kill_at} within {timeout_s} s")
    finally:
        process.kill()
        process.wait()
        if process.stderr:
            process.stderr.close()
    killed_seconds = time.perf_counter() - start
    saved = state_files(states)
    killed_after = int(saved[0].name[5:13]) if saved else 0
    resumed = run([*command, "--resume"], timeout_s=timeout_s, threads=threads, env=hidden)
    with num_threads(threads), Timer() as uninterrupted:      # the same run, in this process
        train_and_save(kind, reference, profile, steps=steps, seed=seed, progress=False)
    diff = max_weight_difference(out, reference)
    return {"kind": kind, "steps": steps, "every": every, "killed_after": killed_after,
            "identical": diff == 0.0, "max_abs_diff": diff,
            "killed_run_s": killed_seconds, "resumed_run_s": resumed["seconds"],
            "uninterrupted_s": uninterrupted.seconds}


def process_setting(profile: str, processes: int = 1) -> dict[str, Any]:
    """Where a run of ``processes`` ranks on ``profile`` can train on this machine.

    Each rank needs a device of its own: with that many GPUs the profile's own model runs
    (NCCL between ranks); otherwise the ranks are CPU processes (gloo, the GPUs hidden when
    there are too few for the ranks: NCCL refuses two ranks on one GPU), and the ``gpu``
    profile falls back to the ``smoke`` profile's model (its 32x32 U-Net takes seconds a
    step on a CPU core; in the ``gpu`` profile's dry run there is no GPU either).

    Returns:
        ``profile`` (the one to train), ``cpu`` (hide the GPUs), ``why`` (one line).
    """
    gpus = torch.cuda.device_count()
    if gpus >= processes:
        return {"profile": profile, "cpu": False,
                "why": f"{processes} rank(s) on {processes} of {gpus} GPU(s)"}
    fallback = "smoke" if profile == "gpu" else profile
    return {"profile": fallback, "cpu": True,
            "why": f"{processes} CPU process(es) ({gpus} GPU(s) here, fewer than the ranks); "
                   f"the {fallback!r} profile's model"}


def ddp_comparison(kind: str, folder: str | Path, *, profile: str = "smoke", steps: int,
                   nprocs: Sequence[int] = (1, 2), seed: int = 0, rounds: int = 1,
                   cpu: bool = False, timeout_s: float = 300.0) -> list[dict[str, Any]]:
    """The same run on each number of processes (same global batch), alternated.

    Each process gets one thread, so ``N`` processes use ``N`` cores; ``cpu`` hides the GPUs
    (see :func:`process_setting`). Returns one row per
    ``nproc``: the median over ``rounds`` of the wall seconds (process start, rendezvous and
    data loading included) and of the training loop's own seconds (rank 0's), steps per
    second and speed-up on the latter, and the largest weight difference to the
    1-process run.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wall: dict[int, list[float]] = {n: [] for n in nprocs}
    train: dict[int, list[float]] = {n: [] for n in nprocs}
    for r in range(rounds):
        order = list(nprocs) if r % 2 == 0 else list(reversed(nprocs))
        for n in order:
            out = folder / f"{kind}_{n}proc.pt"
            done = run(train_command(kind, out, profile=profile, steps=steps, seed=seed,
                                     nproc=n), timeout_s=timeout_s,
                       env={"CUDA_VISIBLE_DEVICES": ""} if cpu else None)
            wall[n].append(done["seconds"])
            train[n].append(float(json.loads(done["stdout"])["seconds"]))

    def median(values: list[float]) -> float:
        return float(torch.tensor(values).median())

    base = folder / f"{kind}_{nprocs[0]}proc.pt"
    return [{"kind": kind, "processes": n, "steps": steps, "wall_s": median(wall[n]),
             "train_s": median(train[n]), "steps_per_s": steps / median(train[n]),
             "speed-up": median(train[nprocs[0]]) / median(train[n]),
             "max_abs_diff": max_weight_difference(base, folder / f"{kind}_{n}proc.pt")}
            for n in nprocs]

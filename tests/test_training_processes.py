"""Training as processes: killed with SIGKILL between a state's write and its rename, then
resumed bit-identically; and data parallel on two gloo processes over loopback, equal to one
process with the same global batch. Every subprocess has a time limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aigc_course import kinds
from aigc_course.checkpoint import read_checkpoint
from aigc_course.train.engine import RunOptions, state_files
from aigc_course.train.launch import train_command
from aigc_course.utils import num_threads

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
STEPS = 12

KILLED_BETWEEN_WRITE_AND_RENAME = """
import os, signal, sys
from aigc_course import kinds
from aigc_course.train.engine import RunOptions

real_replace, calls = os.replace, []

def replace(src, dst):           # the third state is written in full, then: killed
    calls.append(dst)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)

os.replace = replace
kinds.train_and_save("ddpm", sys.argv[1], "smoke", steps={steps}, progress=False,
                     run=RunOptions(checkpoint_dir=sys.argv[2], checkpoint_every=4))
"""


def test_killed_between_write_and_rename_resumes_bit_identically(tmp_path: Path) -> None:
    states = tmp_path / "states"
    script = KILLED_BETWEEN_WRITE_AND_RENAME.format(steps=STEPS)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "never.pt"),
                           str(states)], env=ENV, timeout=120, capture_output=True, text=True)
    assert done.returncode == -9, done.stderr[-2000:]                   # SIGKILL, not an error
    assert [p.name for p in state_files(states)] == ["step-00000008.pt", "step-00000004.pt"]
    scratch = list(states.glob(".step-00000012.*"))
    assert len(scratch) == 1 and scratch[0].stat().st_size > 0           # written, not renamed
    with num_threads(1):
        resumed = kinds.train_and_save("ddpm", tmp_path / "resumed.pt", "smoke", steps=STEPS,
                                       progress=False,
                                       run=RunOptions(checkpoint_dir=str(states),
                                                      checkpoint_every=4, resume=True))
        kinds.train_and_save("ddpm", tmp_path / "reference.pt", "smoke", steps=STEPS,
                             progress=False)
    assert not list(states.glob(".step-*"))                              # the scratch is gone
    a = read_checkpoint(resumed["path"])["state_dict"]
    b = read_checkpoint(tmp_path / "reference.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


DATA_PARALLEL = """
import json, sys
import torch, torch.distributed as dist
from aigc_course import kinds
from aigc_course.train.engine import RunOptions

out = {}
for kind in ("ddpm", "gpt", "vae", "gan"):
    metrics = kinds.train_and_save(kind, f"{sys.argv[1]}/{kind}.pt", "smoke", steps=STEPS,
                                   progress=False, run=RunOptions(timeout_s=60))
    out[kind] = metrics["path"]                    # None on rank 1: rank 0 writes
assert dist.get_world_size() == 2
dist.barrier()
dist.destroy_process_group()
if out["ddpm"] is not None:
    print(json.dumps(out))
""".replace("STEPS", str(STEPS))


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(
        tmp_path: Path) -> None:
    """``torchrun --standalone --nproc_per_node=2`` (gloo, loopback, a free port).

    Tolerance: the two ranks' mean gradients are averaged, which equals the global
    batch's mean gradient in exact arithmetic; in float32 the sums run in another order
    (about 1e-7 relative), and Adam divides by $\\sqrt{\\hat v}$, so a parameter whose
    gradient is near zero can move by up to the learning rate on a rounding difference.
    Measured over these 12 smoke steps: 1.1e-6 (ddpm), 1.2e-7 (gpt), 3.4e-8 (vae); over
    30 steps 5e-5 (ddpm). The bar, 1e-4, is 90 times the largest of these and 18 times
    below what a wrong split gives: the same run on half the batch differs by 1.8e-3
    (checked below, at more than 1e-3).
    """
    script = tmp_path / "data_parallel.py"
    script.write_text(DATA_PARALLEL)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(script), str(tmp_path)]
    done = subprocess.run(command, env=ENV, timeout=240, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    paths = json.loads(done.stdout.strip().splitlines()[-1])
    with num_threads(1):
        for kind in ("ddpm", "gpt", "vae"):
            kinds.train_and_save(kind, tmp_path / f"{kind}_1.pt", "smoke", steps=STEPS,
                                 progress=False)
            a = read_checkpoint(paths[kind])["state_dict"]
            b = read_checkpoint(tmp_path / f"{kind}_1.pt")["state_dict"]
            diff = max((a[k].double() - b[k].double()).abs().max().item() for k in a
                       if a[k].is_floating_point())
            assert diff < 1e-4, f"{kind}: 2 processes differ from 1 by {diff}"
            history = read_checkpoint(paths[kind])["metadata"]["history"]
            single = read_checkpoint(tmp_path / f"{kind}_1.pt")["metadata"]["history"]
            loss = "loss"
            # the first step's loss, before any update: the mean of the two halves' means
            assert history[loss][0] == pytest.approx(single[loss][0], rel=1e-6)
        # the control: a wrong global batch (half of it) is far outside the bar
        p = kinds.profile_for(kinds.get("ddpm"), "smoke")
        kinds.train_and_save("ddpm", tmp_path / "half.pt", p.replace(batch_size=p.batch_size // 2),
                             steps=STEPS, progress=False)
    a = read_checkpoint(tmp_path / "half.pt")["state_dict"]
    b = read_checkpoint(tmp_path / "ddpm_1.pt")["state_dict"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) > 1e-3
    gan = read_checkpoint(paths["gan"])                                  # runs; batch norm
    assert all(torch.isfinite(v).all() for v in gan["state_dict"].values())  # per rank


def test_the_command_line_launches_under_torchrun() -> None:
    command = train_command("gpt", "m.pt", steps=5, nproc=2, extra=["--resume"])
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone",
                            "--nproc_per_node=2"]
    assert command[5:9] == ["-m", "aigc_course", "train", "gpt"] and command[-1] == "--resume"
    assert train_command("gpt", "m.pt", steps=5)[1:3] == ["-m", "aigc_course"]

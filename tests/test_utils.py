import random

import numpy as np
import pytest
import torch

from aigc_course.utils import Timer, count_params, get_device, num_threads, seed_everything


def test_seed_everything_repeats_all_generators() -> None:
    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    seed_everything(7)
    b = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    g = seed_everything(7)
    expected = torch.rand(2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(2, generator=g), expected)


def test_seed_everything_rejects_negative() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        seed_everything(-1)


def test_get_device() -> None:
    assert get_device("cpu").type == "cpu"
    assert get_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")


def test_count_params() -> None:
    model = torch.nn.Linear(3, 2)          # 3*2 weights + 2 biases
    assert count_params(model) == 8
    model.bias.requires_grad_(False)
    assert count_params(model) == 6
    assert count_params(model, trainable_only=False) == 8


def test_timer_and_threads() -> None:
    with Timer() as t:
        sum(range(1000))
    assert t.seconds >= 0
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

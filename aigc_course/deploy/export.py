"""Exporting a trained model (chapter 10): ``torch.export`` and ONNX, checked against eager.

A served model is a *file*, not Python code: :func:`export_checkpoint` turns a checkpoint
into one and checks that it computes what the eager network computes.

* ``.pt2`` -- ``torch.export.export`` traces the network into an ``ExportedProgram``
  (ATen operators, weights inside), written with ``torch.export.save``; any PyTorch
  reads it back with ``torch.export.load(path).module()``, no model code needed.
* ``.onnx`` -- the dynamo exporter (``torch.onnx.export(dynamo=True)``) through
  :func:`aigc_course.compress.quantize.export_onnx` where it fits (a generator
  ``(z[, y]) -> x``), run with ONNX Runtime on the CPU
  (:class:`~aigc_course.compress.quantize.OnnxGenerator`). ONNX Runtime is also the
  course's *edge* runtime: one C library with mobile builds (Android, iOS) that runs the
  same file.

What each kind exports (:func:`exportable`): the network a request runs, not the
training object. The GAN's generator $G(z[, y]) \\to x$; the VAE's decoder mean
$2\\sigma(\\text{decode}(z[, y])) - 1$; the DDPM's denoiser $\\epsilon_\\theta(x_t, t[, y])$.
A diffusion model's sampling loop stays in Python: :func:`with_exported_denoiser` puts an
exported denoiser where the eager one was, and the model's own ``sample`` (DDIM,
guidance and all) runs on it. The text kind (``gpt``) is refused for now: its sampling
loop carries a key/value cache whose length grows each step.

**The batch dimension must stay dynamic.** ``torch.export`` specialises a dimension
whose example size is 0 or 1 (a size-1 dimension broadcasts, so the tracer cannot tell
it from a constant), so an example of batch 1 would freeze the file at batch 1. The
example is therefore widened to batch 2 before tracing, and the batch is declared
dynamic (``torch.export.Dim``, shared by every input) in both formats.

Parity is the maximum absolute difference from eager at batch 1 and a larger batch.
Both runtimes compute in float32 but choose other kernels and summation orders
(ONNX Runtime fuses batch norm into the convolution before it), so the two agree to
about float32 round-off times the depth of the sums, $\\sim 10^{-6}$ on outputs in
$[-1, 1]$, not bit for bit.

Simplified: CPU and float32 only. No ExecuTorch ``.pte``: ExecuTorch 1.5.1 (the release
for torch 2.14) exports and runs these networks, but pulls in sixteen more packages
(``coremltools``, ``hydra-core``, ``hypothesis``, ...), prints its C++ log on stderr and
plans memory for a bounded batch (batch 17 failed to resize an input); ONNX Runtime
(:data:`EDGE_RUNTIME`) serves the same file on a server and on a phone.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F

from aigc_course.checkpoint import atomic_write
from aigc_course.compress.measure import Latency, compare_latency
from aigc_course.compress.quantize import OnnxGenerator, export_onnx
from aigc_course.kinds import load_model
from aigc_course.models.vae import ConvVAE, decoder_mean
from aigc_course.train.diffusion import DiffusionModel
from aigc_course.utils import file_sha256

Tensor = torch.Tensor
Format = Literal["pt2", "onnx"]
FORMATS: tuple[str, ...] = get_args(Format)
#: the kinds :func:`exportable` knows, and the network each exports
EXPORTS: dict[str, str] = {
    "gan": "the generator G(z[, y]) -> x",
    "vae": "the decoder mean (z[, y]) -> x",
    "ddpm": "the denoiser eps_theta(xt, t[, y]) -> eps",
}
#: the runtime chapter 10 uses for phone-class devices (ExecuTorch: see the module docstring)
EDGE_RUNTIME = "onnxruntime"
#: the largest parity error :func:`export_checkpoint` accepts (outputs are of order 1)
TOLERANCE = 1e-3
#: the batch sizes parity is checked at
PARITY_BATCHES: tuple[int, ...] = (1, 64)
_ONNX_AXIS_WARNING = "# The axis name"            # every input shares one batch dimension


# --- which network each kind exports --------------------------------------------------

class VAEDecoder(nn.Module):
    """A VAE's decoder mean, ``(z (B, latent_dim)[, y (B,)]) -> x (B, C, H, W)`` in $[-1, 1]$.

    What ``ConvVAE.sample`` returns for given latents, holding only the decoder's layers
    (the encoder stays out of the file). It carries the VAE's ``config`` (``latent_dim``,
    ``num_classes``) so that it is called and exported like a generator.
    ``ConvVAE.decode`` is written out here with ``view(-1, ...)``: its ``view(len(z), ...)``
    makes ``torch.export`` specialise the batch (``len`` needs a Python ``int``).
    """

    def __init__(self, vae: ConvVAE) -> None:
        super().__init__()
        self.config, self.feature_shape = vae.config, vae.feature_shape
        self.from_z, self.decoder = vae.from_z, vae.decoder

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.config.num_classes:
            if y is None:
                raise ValueError("this VAE is class-conditional: pass labels y")
            one_hot = F.one_hot(y.long(), self.config.num_classes).to(z)  # (B, K)
            z = torch.cat([z, one_hot], dim=1)                             # (B, latent + K)
        h = self.from_z(z)                                                 # (B, F)
        return decoder_mean(self.decoder(h.view(-1, *self.feature_shape)))  # (B, C, H, W)


@dataclass
class Exportable:
    """The network of a model that an export holds, and how to make its inputs.

    Attributes:
        kind: the model kind (``"gan"``, ``"vae"``, ``"ddpm"``).
        network: the ``nn.Module`` (eval mode, a copy: exporting leaves the model alone).
        input_names: the names of its positional inputs (``("z", "y")``, ...).
        input_shapes: each input's shape without the batch (``()`` for labels or steps).
        input_dtypes: each input's dtype (latents float32, labels and steps int64).
        output_name: the output's name in the exported file.
        high: for integer inputs, the exclusive upper bound of their values.
    """

    kind: str
    network: nn.Module
    input_names: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    input_dtypes: tuple[torch.dtype, ...]
    output_name: str
    high: dict[str, int] = field(default_factory=dict)

    def example(self, batch: int, seed: int = 0) -> tuple[Tensor, ...]:
        """Seeded inputs of batch ``batch``: normal floats, uniform integers below ``high``."""
        rng = torch.Generator().manual_seed(seed)
        inputs: list[Tensor] = []
        for name, shape, dtype in zip(self.input_names, self.input_shapes, self.input_dtypes,
                                      strict=True):
            if dtype.is_floating_point:
                inputs.append(torch.randn(batch, *shape, generator=rng, dtype=dtype))
            else:
                inputs.append(torch.randint(self.high[name], (batch, *shape), generator=rng))
        return tuple(inputs)

    @torch.no_grad()
    def __call__(self, *inputs: Tensor) -> Tensor:
        """The eager network on ``inputs``, without gradients."""
        return self.network(*inputs)


def exportable(kind: str, model: Any) -> Exportable:
    """The network of a trained model that an export holds (see :data:`EXPORTS`).

    Args:
        kind: the model kind's name. model: the model (``kinds.load_model``'s second value).

    Raises:
        ValueError: a text model (``gpt``: not exported yet) or an unknown kind.
    """
    conditional = bool(getattr(model, "conditional", False))
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype, ...]
    high: dict[str, int]
    if kind == "gan" or kind == "vae":
        network = model.generator if kind == "gan" else VAEDecoder(model)
        c = model.config
        names, shapes, dtypes = ("z",), ((c.latent_dim,),), (torch.float32,)
        high = {}
        if conditional:
            names, shapes, dtypes = names + ("y",), shapes + ((),), dtypes + (torch.int64,)
            high = {"y": c.num_classes}
        return Exportable(kind, copy.deepcopy(network).eval(), names, shapes, dtypes, "x", high)
    if kind == "ddpm":
        c, T = model.config, model.schedule.T
        names = ("xt", "t", "y")[:3 if conditional else 2]
        shapes = ((c.channels, c.image_size, c.image_size), (), ())[:len(names)]
        dtypes = (torch.float32, torch.int64, torch.int64)[:len(names)]
        # y may be the null label num_classes (classifier-free guidance's unconditional half)
        high = {"t": T, "y": c.num_classes + 1}
        return Exportable(kind, copy.deepcopy(model.network).eval(), names, shapes, dtypes,
                          "eps", high)
    if kind == "gpt":
        raise ValueError("exporting a text model (kind 'gpt') is not supported yet: its "
                         "sampling loop carries a key/value cache that grows each step; "
                         f"exportable kinds: {', '.join(EXPORTS)}")
    raise ValueError(f"cannot export a {kind!r} model; exportable kinds: {', '.join(EXPORTS)}")


# --- the two formats ------------------------------------------------------------------

def _trace_inputs(inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """``inputs`` widened to batch 2 if of batch 1 (a traced size 1 would be frozen)."""
    return tuple(torch.cat([t, t]) for t in inputs) if len(inputs[0]) == 1 else inputs


def export_pt2(net: Exportable, path: str | Path, example: tuple[Tensor, ...] | None = None
               ) -> Path:
    """``torch.export`` the network with a dynamic batch and ``torch.export.save`` it.

    Args:
        net: the network (:func:`exportable`).
        path: the ``.pt2`` file (written in place: :func:`export_checkpoint` writes
            atomically).
        example: the inputs to trace with (``None``: :meth:`Exportable.example` of
            batch 8); batch 1 is widened to 2 (see the module docstring).

    Returns:
        The path.
    """
    path = Path(path)
    inputs = _trace_inputs(example if example is not None else net.example(8))
    batch = torch.export.Dim("batch")
    with torch.no_grad():
        program = torch.export.export(net.network, inputs,
                                      dynamic_shapes=tuple({0: batch} for _ in inputs))
    torch.export.save(program, str(path))
    return path


def export_onnx_network(net: Exportable, path: str | Path,
                        example: tuple[Tensor, ...] | None = None) -> Path:
    """Export the network to ONNX (dynamo exporter, opset default) with a dynamic batch.

    A generator-like network (``(z[, y]) -> x``: the GAN's and the VAE's) goes through
    :func:`aigc_course.compress.quantize.export_onnx`, chapter 09's exporter, which
    traces its own seeded latents (``example`` is then unused); the denoiser, whose
    inputs that exporter does not know, is exported here the same way: named inputs,
    one ``batch`` axis, the weights inside the one file.

    Returns:
        The path.
    """
    path = Path(path)
    if net.input_names[0] == "z":
        return export_onnx(net.network, path)
    inputs = _trace_inputs(example if example is not None else net.example(8))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ONNX_AXIS_WARNING, category=UserWarning)
        torch.onnx.export(net.network, inputs, str(path), dynamo=True,
                          input_names=list(net.input_names), output_names=[net.output_name],
                          dynamic_shapes=tuple({0: "batch"} for _ in inputs),
                          external_data=False, verbose=False)
    return path


class ExportedModel:
    """An exported file, called like the network it holds: ``model(*tensors) -> Tensor``.

    Args:
        path: a ``.pt2`` (``torch.export.load(path).module()``) or ``.onnx`` file (an
            ONNX Runtime CPU session).
        threads: ONNX Runtime's intra-op threads (a ``.pt2`` uses torch's setting).

    Attributes:
        format: ``"pt2"`` or ``"onnx"``. input_names: the file's input names.
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        self.format = _format_of(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no exported model at {self.path}")
        self._run: Callable[..., Tensor]
        if self.format == "pt2":
            try:
                program = torch.export.load(str(self.path))
            except Exception as error:       # a zip that is not an ExportedProgram, ...
                raise ValueError(f"{self.path} is not a torch.export program ({error})"
                                 ) from error
            self.input_names = tuple(spec.arg.name for spec in program.graph_signature
                                     .input_specs if spec.kind.name == "USER_INPUT")
            self._run = program.module()
        else:
            try:
                session = OnnxGenerator(self.path, threads=threads)
            except Exception as error:       # onnxruntime's own error types
                raise ValueError(f"{self.path} is not an ONNX model ONNX Runtime can run "
                                 f"({error})") from error
            self.input_names = tuple(session.input_names)
            self._run = session

    def __call__(self, *inputs: Tensor) -> Tensor:
        with torch.no_grad():
            return self._run(*inputs)


def _format_of(path: Path) -> Format:
    suffix = path.suffix.lstrip(".")
    if suffix == "pt2":
        return "pt2"
    if suffix == "onnx":
        return "onnx"
    raise ValueError(f"unknown export format {suffix!r} of {path}; valid: {', '.join(FORMATS)}")


def load_exported(path: str | Path, threads: int = 1) -> ExportedModel:
    """Load an exported ``.pt2`` or ``.onnx`` file to run on tensors (what a service serves).

    Raises:
        FileNotFoundError: no file. ValueError: another suffix, or a file that the
            runtime cannot read.
    """
    return ExportedModel(path, threads)


# --- sampling a diffusion model with an exported denoiser ------------------------------

class ExportedDenoiser(nn.Module):
    """An exported $\\epsilon_\\theta$ as an ``eps_model`` DDIM (and guidance) can call.

    ``forward(x_t, t, y=None)``: a conditional network given ``y=None`` gets the null
    label ``num_classes``, as the eager U-Net does. Carries the eager network's
    ``config``, which :class:`~aigc_course.diffusion.guidance.Guided` reads.
    """

    def __init__(self, exported: Callable[..., Tensor], config: Any) -> None:
        super().__init__()
        self.exported, self.config = exported, config

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if not self.config.num_classes:
            return self.exported(xt, t)
        if y is None:
            y = torch.full_like(t, self.config.num_classes)
        return self.exported(xt, t, y)


def with_exported_denoiser(model: DiffusionModel, exported: Callable[..., Tensor]
                           ) -> DiffusionModel:
    """A copy of a diffusion model whose ``sample`` runs the exported denoiser.

    The schedule, configs and sampling code are the model's own, so
    ``with_exported_denoiser(model, load_exported(path)).sample(n, ...)`` draws what
    ``model.sample(n, ...)`` draws, to the runtime's round-off.
    """
    network = ExportedDenoiser(exported, model.config)
    return dataclasses.replace(model, network=network)  # type: ignore[arg-type]


# --- the command line's entry point ---------------------------------------------------

@dataclass
class ExportReport:
    """What :func:`export_checkpoint` wrote, and how closely it matches eager.

    Attributes:
        kind: the model kind. format: ``"pt2"`` or ``"onnx"``. path: the file.
        bytes: its size. network: what it holds (:data:`EXPORTS`).
        input_names: the inputs, in order. input_shapes: name -> shape, the batch as
            ``"batch"``. dynamic_dims: name -> the dynamic axes (``[0]``, the batch).
        output_name: the output's name.
        max_abs_error: batch size -> max $|f_\\text{file} - f_\\text{eager}|$ on seeded
            inputs (:data:`PARITY_BATCHES`).
        checkpoint: the source checkpoint. checkpoint_sha256: its SHA-256.
    """

    kind: str
    format: str
    path: str
    bytes: int
    network: str
    input_names: list[str]
    input_shapes: dict[str, list[int | str]]
    dynamic_dims: dict[str, list[int]]
    output_name: str
    max_abs_error: dict[int, float]
    checkpoint: str
    checkpoint_sha256: str

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready: the parity keys become strings)."""
        values = dataclasses.asdict(self)
        values["max_abs_error"] = {str(b): e for b, e in self.max_abs_error.items()}
        return values


def export_network(net: Exportable, fmt: str, path: str | Path,
                   example: tuple[Tensor, ...] | None = None) -> Path:
    """Write ``net`` as ``fmt`` to ``path``: :func:`export_pt2` or :func:`export_onnx_network`.

    Raises:
        ValueError: an unknown format (the message lists the valid ones).
    """
    if fmt == "pt2":
        return export_pt2(net, path, example)
    if fmt == "onnx":
        return export_onnx_network(net, path, example)
    raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")


def max_abs_error(net: Exportable, exported: Callable[..., Tensor], batch: int,
                  seed: int = 0) -> float:
    """$\\max |f_\\text{exported}(u) - f_\\text{eager}(u)|$ on seeded inputs ``u`` of ``batch``."""
    inputs = net.example(batch, seed)
    return float((exported(*inputs) - net(*inputs)).abs().max())


def export_checkpoint(checkpoint: str | Path, fmt: Format, out: str | Path, *,
                      batches: Sequence[int] = PARITY_BATCHES,
                      tolerance: float = TOLERANCE) -> ExportReport:
    """Export a checkpoint's network to ``out`` and check it against eager: ``aigc-course export``.

    The model is loaded with :func:`aigc_course.kinds.load_model` (``weights_only=True``),
    its network (:func:`exportable`) traced from a batch-1 example with the batch
    dynamic, written to a scratch file, loaded back and compared with eager at each
    of ``batches``; only a file within ``tolerance`` is renamed over ``out`` (atomically:
    a failed export leaves ``out`` as it was).

    Args:
        checkpoint: a model checkpoint (``aigc_course/checkpoints/gan_digits16.pt``, ...).
        fmt: ``"pt2"`` or ``"onnx"``.
        out: the file to write (not ``checkpoint``).
        batches: the batch sizes parity is measured at.
        tolerance: the largest max-abs error accepted.

    Returns:
        The :class:`ExportReport`.

    Raises:
        ValueError: an unknown format, ``out`` the checkpoint itself, a corrupt or
            foreign checkpoint, a kind that is not exported (``gpt``), or parity worse
            than ``tolerance``.
        FileNotFoundError: no checkpoint.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    checkpoint, out = Path(checkpoint), Path(out)
    if out.resolve() == checkpoint.resolve():
        raise ValueError(f"refusing to overwrite the checkpoint {checkpoint} with its export")
    kind, model = load_model(checkpoint)
    net = exportable(kind.name, model)
    with atomic_write(out) as scratch:
        export_network(net, fmt, scratch, net.example(1))
        exported = load_exported(scratch)
        errors = {b: max_abs_error(net, exported, b) for b in batches}
        worst = max(errors.values(), default=0.0)
        if not worst <= tolerance:                       # NaN fails too
            raise ValueError(f"the {fmt} export of {checkpoint} differs from eager by "
                             f"{worst:.3g} > {tolerance:.3g}; nothing written")
        size = scratch.stat().st_size
    return ExportReport(
        kind=kind.name, format=fmt, path=str(out), bytes=size, network=EXPORTS[kind.name],
        input_names=list(net.input_names),
        input_shapes={n: ["batch", *s] for n, s in zip(net.input_names, net.input_shapes,
                                                       strict=True)},
        dynamic_dims={n: [0] for n in net.input_names}, output_name=net.output_name,
        max_abs_error=errors, checkpoint=str(checkpoint), checkpoint_sha256=file_sha256(checkpoint))


def _bind(fn: Callable[..., Tensor], inputs: tuple[Tensor, ...]) -> Callable[[], Tensor]:
    return lambda: fn(*inputs)


def runtime_latency(net: Exportable, files: Mapping[str, str | Path],
                    batches: Sequence[int] = (1, 64), **timing: Any
                    ) -> dict[int, dict[str, Latency]]:
    """Seconds per call of eager and of each exported file, per batch size, one thread.

    Every candidate runs the same seeded inputs; timing is
    :func:`~aigc_course.compress.measure.compare_latency` (rotated rounds, median), so
    report ratios to ``"eager"`` measured in the same rounds.

    Args:
        net: the eager network (:func:`exportable`).
        files: name -> exported file (ONNX Runtime sessions get one intra-op thread).
        batches: the batch sizes. timing: ``rounds``, ``round_seconds``, ... for
            ``compare_latency``.

    Returns:
        batch -> name -> :class:`Latency`, ``"eager"`` first.
    """
    runners = {name: load_exported(path, threads=1) for name, path in files.items()}
    result: dict[int, dict[str, Latency]] = {}
    for batch in batches:
        inputs = net.example(batch)
        candidates = {"eager": _bind(net, inputs)}
        candidates.update({name: _bind(runner, inputs) for name, runner in runners.items()})
        result[batch] = compare_latency(candidates, **timing)
    return result

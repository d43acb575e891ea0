"""Post-training quantisation of a generator: the arithmetic, then int8 on a CPU three ways.

Uniform affine quantisation (Nagel et al. 2021, "A white paper on neural network
quantization", section 2.1, eqs. 4 and 6; Jacob et al. 2018, "Quantization and training
of neural networks for efficient integer-arithmetic-only inference", eq. 1) maps a real
$w$ to an integer $q = \\mathrm{clamp}(\\lfloor w / s \\rceil + z, q_\\min, q_\\max)$
and back, $\\hat w = s (q - z)$. Symmetric: $z = 0$, $s = \\max|w| / (2^{b-1} - 1)$; asymmetric:
$s = (\\max w - \\min w) / (2^b - 1)$, $z = \\lfloor -\\min w / s \\rceil$. One $s$ per
tensor, or one per output channel (the rows of a weight). Round-to-nearest leaves an
error uniform on $[-s/2, s/2]$, of mean square $s^2 / 12$ (Widrow 1956): each bit
halves $s$ and gains 6 dB.

:func:`fake_quantize` writes that out; :func:`bits_sweep` measures what it does to a
generator's output as the bits shrink. Then three ways to run int8 on a CPU:

* :func:`pt2e_int8`: PyTorch 2 export quantisation (torchao's PT2E): ``torch.export``,
  an :class:`X86InductorQuantizer` annotates the graph, calibration on latent samples
  (a generator's calibration "data" is seeded noise and labels), ``convert_pt2e`` and
  ``torch.compile`` with Inductor's *freezing*, without which Inductor keeps the
  quantise/dequantise pairs in float32 and no int8 kernel runs;
* :func:`onnx_int8`: ``torch.onnx.export`` and ONNX Runtime's static QDQ quantisation;
* :func:`dynamic_int8`: torchao's dynamic int8 (activations quantised at run time),
  which on small layers costs more than it saves.

:class:`QuantizationReport` says which layers each path runs in int8. The x86 quantiser
does not annotate ``ConvTranspose2d``, so a transposed-convolution generator keeps those
layers in float32; ONNX Runtime annotates them but, lacking an int8 transposed
convolution kernel, runs them in float32 between a dequantise and a quantise. A
resize-then-convolution generator is int8 throughout on both.

Simplified: weights only in the sweep (activations stay float32); batch norm is folded
into the layer before it, as both runtimes do; calibration is plain min/max
(histogram observers and quantisation-aware training are left out).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from unittest import mock

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from aigc_course.metrics.image import psnr

Tensor = torch.Tensor
Granularity = Literal["per_tensor", "per_channel"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)
BITS = range(2, 17)
#: the layer types whose weights quantisation touches, and the axis of their output channels
WEIGHT_AXIS: dict[type[nn.Module], int] = {nn.Linear: 0, nn.Conv2d: 0, nn.ConvTranspose2d: 1}


# --- the arithmetic -------------------------------------------------------------------

def quantization_params(w: Tensor, bits: int, granularity: Granularity = "per_channel",
                        symmetric: bool = True, axis: int = 0) -> tuple[Tensor, Tensor]:
    """The scale $s$ and zero point $z$ of ``w`` on a ``bits``-bit grid.

    Args:
        w: a float tensor (a weight: ``(out, in, ...)`` for ``axis=0``).
        bits: $b \\in [2, 16]$.
        granularity: one $s$ for the tensor, or one per slice along ``axis``.
        symmetric: $z = 0$ and $s = \\max|w| / (2^{b-1} - 1)$; else asymmetric min/max.
        axis: the channel axis for ``"per_channel"``.

    Returns:
        ``scale`` and ``zero_point`` (integer-valued floats), shaped to broadcast against
        ``w``: ``()`` per tensor, ``(1, ..., C, ..., 1)`` per channel.

    Raises:
        ValueError: ``bits`` out of range or an unknown ``granularity``.
    """
    if bits not in BITS:
        raise ValueError(f"bits must be in [{BITS.start}, {BITS.stop - 1}], got {bits}")
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; "
                         f"valid: {', '.join(GRANULARITIES)}")
    w = w.detach().float()
    if granularity == "per_channel" and w.ndim == 1:
        w_min = w_max = w                                      # each entry its own channel
    elif granularity == "per_channel":
        dims = [d for d in range(w.ndim) if d != axis % w.ndim]
        shape = [1] * w.ndim
        shape[axis] = w.shape[axis]
        w_min = w.amin(dim=dims).view(shape)                   # (1, .., C, .., 1)
        w_max = w.amax(dim=dims).view(shape)
    else:
        w_min, w_max = w.min(), w.max()                        # ()
    if symmetric:
        scale = torch.maximum(w_min.abs(), w_max.abs()) / (2 ** (bits - 1) - 1)
        zero_point = torch.zeros_like(scale)
    else:
        w_min, w_max = w_min.clamp(max=0), w_max.clamp(min=0)  # the grid holds 0 exactly
        scale = (w_max - w_min) / (2**bits - 1)
        zero_point = torch.round(-w_min / scale.clamp_min(1e-30))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero slice
    return scale, zero_point


def fake_quantize(w: Tensor, bits: int = 8, granularity: Granularity = "per_channel",
                  symmetric: bool = True, axis: int = 0) -> Tensor:
    """Round ``w`` onto a ``bits``-bit integer grid and back (round to nearest).

    $q = \\mathrm{clamp}(\\lfloor w/s \\rceil + z, q_\\min, q_\\max)$, $\\hat w = s(q - z)$
    (Nagel et al. 2021, eqs. 4 and 6), with $s, z$ from :func:`quantization_params`;
    symmetric grids are restricted to $[-(2^{b-1}-1), 2^{b-1}-1]$ (as PyTorch's and ONNX
    Runtime's int8 weights), asymmetric ones are $[0, 2^b - 1]$.

    Args:
        w: a float tensor. Other arguments: see :func:`quantization_params`.

    Returns:
        $\\hat w$, ``w``'s shape and dtype.
    """
    scale, zero_point = quantization_params(w, bits, granularity, symmetric, axis)
    q_min, q_max = ((-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if symmetric
                    else (0, 2**bits - 1))
    q = torch.clamp(torch.round(w.float() / scale) + zero_point, q_min, q_max)  # eq. 4
    return (scale * (q - zero_point)).to(w.dtype)                              # eq. 6


def relative_error(w: Tensor, w_hat: Tensor) -> float:
    """$\\lVert \\hat w - w \\rVert^2 / \\lVert w \\rVert^2$ (0: exact)."""
    return float((w_hat.double() - w.double()).pow(2).sum() / w.double().pow(2).sum())


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each batch norm folded into the layer before it.

    In eval mode $\\mathrm{BN}(Wx + b) = \\gamma (Wx + b - \\mu)/\\sqrt{\\sigma^2 + \\epsilon}
    + \\beta$ is one affine layer, which is what both int8 runtimes quantise. Folds the
    pairs inside :class:`nn.Sequential` containers (a ``Linear``, ``Conv2d`` or
    ``ConvTranspose2d``, or a ``Sequential`` ending in one, then a ``BatchNorm``); the
    batch norm becomes an ``Identity``. Same outputs as ``model.eval()`` to round-off.
    """
    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            owner, key = seq, str(i)
            layer = seq[i]
            if isinstance(layer, nn.Sequential) and len(layer):
                owner, key, layer = layer, str(len(layer) - 1), layer[-1]
            bn = seq[i + 1]
            if not isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d):
                continue
            if isinstance(layer, nn.Linear):
                fused: nn.Module = fuse_linear_bn_eval(layer, bn)
            elif isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
                fused = fuse_conv_bn_eval(layer, bn, transpose=isinstance(layer,
                                                                          nn.ConvTranspose2d))
            else:
                continue
            setattr(owner, key, fused)
            seq[i + 1] = nn.Identity()
    return model


def fake_quantize_weights(model: nn.Module, bits: int, granularity: Granularity,
                          symmetric: bool = True) -> nn.Module:
    """A copy of ``model``, batch norm folded, its layer weights replaced by $\\hat w$.

    The weights of every ``Linear``, ``Conv2d`` and ``ConvTranspose2d`` are fake-quantised
    per output channel (axis 0, or 1 for a transposed convolution's ``(in, out, k, k)``);
    biases stay float32, as int8 runtimes keep them in 32 bits.
    """
    model = fold_batch_norm(model)
    with torch.no_grad():
        for module in model.modules():
            axis = WEIGHT_AXIS.get(type(module))
            if axis is not None:
                weight = module.weight
                assert isinstance(weight, Tensor)
                weight.copy_(fake_quantize(weight, bits, granularity, symmetric, axis))
    return model


def _layer_weights(model: nn.Module) -> Tensor:
    """The weights of ``model``'s quantisable layers, flattened and joined: ``(P,)``."""
    return torch.cat([m.weight.detach().flatten() for m in model.modules()
                      if type(m) in WEIGHT_AXIS and isinstance(m.weight, Tensor)])


@dataclass
class BitsSweep:
    """What weight quantisation does at each bit width (:func:`bits_sweep`).

    Attributes:
        bits: the bit widths, ascending.
        psnr: granularity -> output PSNR (dB, range 2) of $G$ against float32, per bit width.
        weight_error: granularity -> :func:`relative_error` of all the folded weights.
    """

    bits: list[int]
    psnr: dict[str, list[float]] = field(default_factory=dict)
    weight_error: dict[str, list[float]] = field(default_factory=dict)


@torch.no_grad()
def bits_sweep(generator: nn.Module, bits: tuple[int, ...] = tuple(range(2, 9)),
               granularities: tuple[Granularity, ...] = ("per_tensor", "per_channel"),
               n: int = 256, seed: int = 0) -> BitsSweep:
    """Output PSNR and weight error of $G$ with fake-quantised weights, per bit width.

    Args:
        generator: $G(z[, y])$ with ``config.latent_dim`` and ``config.num_classes``.
        bits: the bit widths to try. granularities: per tensor, per channel or both.
        n: latent samples the PSNR is averaged over. seed: their seed.
    """
    reference = fold_batch_norm(generator)                        # float32, eval mode
    inputs = latent_batches(generator, CalibrationConfig(batches=1, batch_size=n, seed=seed))[0]
    x_ref = reference(*inputs)                                       # (n, C, H, W)
    result = BitsSweep(sorted(bits))
    for granularity in granularities:
        result.psnr[granularity], result.weight_error[granularity] = [], []
        for b in result.bits:
            quantized = fake_quantize_weights(reference, b, granularity)
            x_hat = quantized(*inputs)
            result.psnr[granularity].append(float(psnr(x_hat, x_ref).mean()))
            result.weight_error[granularity].append(
                relative_error(_layer_weights(reference), _layer_weights(quantized)))
    return result


# --- calibration and the report -------------------------------------------------------

@dataclass(frozen=True)
class CalibrationConfig:
    """The latent samples static quantisation observes to set activation ranges.

    Attributes:
        batches: how many batches. batch_size: samples per batch.
        seed: the seed of $z \\sim \\mathcal N(0, I)$; labels cycle through the classes.
    """

    batches: int = 4
    batch_size: int = 64
    seed: int = 0


def latent_batches(generator: nn.Module, calibration: CalibrationConfig
                   ) -> list[tuple[Tensor, ...]]:
    """Seeded inputs of $G$: ``(z,)`` or ``(z, y)``, ``z`` ``(B, latent_dim)``, ``y`` ``(B,)``."""
    config: Any = generator.config
    rng = torch.Generator().manual_seed(calibration.seed)
    batches: list[tuple[Tensor, ...]] = []
    for _ in range(calibration.batches):
        z = torch.randn(calibration.batch_size, config.latent_dim, generator=rng)
        if config.num_classes:
            batches.append((z, torch.arange(calibration.batch_size) % config.num_classes))
        else:
            batches.append((z,))
    return batches


@dataclass
class QuantizationReport:
    """Which layers a quantised model runs in int8.

    Attributes:
        path: ``"pt2e"`` or ``"onnxruntime"``.
        int8: layer type -> layers whose input and weight both come from int8
            (a dequantise node feeds both).
        float32: layer type -> layers left in float32.
        dequantize_inputs: layer type -> dequantise nodes feeding layers of that type.
        kernels: what actually runs: Inductor's generated calls (``onednn.qconv_pointwise``,
            ...) or ONNX Runtime's optimised node types (``QLinearConv``, ...).
    """

    path: str
    int8: dict[str, int] = field(default_factory=dict)
    float32: dict[str, int] = field(default_factory=dict)
    dequantize_inputs: dict[str, int] = field(default_factory=dict)
    kernels: dict[str, int] = field(default_factory=dict)

    @property
    def fully_int8(self) -> bool:
        """Every weighted layer runs in int8."""
        return not self.float32 and bool(self.int8)


def _coverage(path: str, layers: list[tuple[str, list[str]]]) -> QuantizationReport:
    """Count layers given ``(type, producer types of (input, weight, ...))``."""
    report = QuantizationReport(path)
    int8, fp32, dq = Counter[str](), Counter[str](), Counter[str]()
    for kind, producers in layers:
        quantized = [p.startswith("dequantize") or p == "DequantizeLinear" for p in producers]
        dq[kind] += sum(quantized)
        (int8 if len(quantized) >= 2 and all(quantized[:2]) else fp32)[kind] += 1
    report.int8, report.float32, report.dequantize_inputs = dict(int8), dict(fp32), dict(dq)
    return report


# --- path 1: PT2E with torchao, compiled by Inductor ----------------------------------

#: the notices the PT2E path silences, each where it arises (logger name, message start)
_TORCHAO_IMPORT_LOG = ("torch.utils._pytree", "<enum 'KernelPreference'> is an Enum subclass")
_NO_CUDA_LOG = ("torch.utils.cpp_extension", "No CUDA runtime is found")  # first compile
_INDUCTOR_WARNING = "To copy construct from a tensor"      # torch 2.14's mkldnn lowering
_PT2E_LAYERS = {"linear": "Linear", "conv2d": "Conv2d", "conv_transpose2d": "ConvTranspose2d"}


@contextlib.contextmanager
def _drop_log(logger_name: str, start: str) -> Iterator[None]:
    """Drop the records of one logger that begin with ``start`` inside the block."""

    class Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not record.getMessage().startswith(start)

    logger, drop = logging.getLogger(logger_name), Drop()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _import_torchao() -> Any:
    """torchao's quantisation modules, imported without the deprecation line torchao 0.18
    logs on import (``register_constant() on Enum subclasses is deprecated``)."""
    with _drop_log(*_TORCHAO_IMPORT_LOG):
        import torchao.quantization as torchao_quantization
        import torchao.quantization.pt2e.quantize_pt2e as quantize_pt2e
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    return torchao_quantization, quantize_pt2e, x86


@contextlib.contextmanager
def inductor_freezing() -> Iterator[None]:
    """Inductor's ``freezing`` on inside the block, restored after.

    Freezing treats the weights as constants, so Inductor can fold each
    dequantise-weight node into a packed int8 weight and call oneDNN's int8 kernels; it
    acts when a graph is compiled, so every call that may compile runs inside.
    """
    import torch._inductor.config as inductor_config

    old = inductor_config.freezing
    inductor_config.freezing = True
    try:
        yield
    finally:
        inductor_config.freezing = old


class Int8Generator:
    """A PT2E-quantised generator, called like $G$: ``G(z, y)`` -> ``(B, C, H, W)``.

    Runs without gradients and with Inductor's freezing on (a recompilation, e.g. for
    a new dtype, still gets int8 kernels). ``graph`` is the converted graph module
    (quantise/dequantise in float32: the *reference* int8 model, before compilation).
    """

    def __init__(self, graph: nn.Module, compiled: Callable[..., Tensor] | None) -> None:
        self.graph, self.compiled = graph, compiled

    def __call__(self, *inputs: Tensor) -> Tensor:
        if self.compiled is None:
            with torch.no_grad():
                return self.graph(*inputs)
        with torch.no_grad(), inductor_freezing(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", _INDUCTOR_WARNING, UserWarning)  # a recompile
            return self.compiled(*inputs)


def compile_fp32(generator: nn.Module, *inputs: Tensor) -> Callable[..., Tensor]:
    """``torch.compile(generator)``, compiled now on ``inputs`` (the cost paid once, here).

    The float32 counterpart of :func:`pt2e_int8`'s compilation, without freezing; the
    log line of a first compile on a machine without CUDA is dropped.
    """
    compiled = torch.compile(generator.eval())
    with torch.no_grad(), _drop_log(*_NO_CUDA_LOG):
        compiled(*inputs)
    return compiled


def pt2e_int8(generator: nn.Module, calibration: CalibrationConfig = CalibrationConfig(),
              compile: bool = True, warmup: tuple[int, ...] = (1, 2, 16)
              ) -> tuple[Int8Generator, QuantizationReport]:
    """Static int8 post-training quantisation with torchao's PT2E for x86 CPUs.

    ``torch.export`` (batch dimension dynamic), ``prepare_pt2e`` with
    :class:`X86InductorQuantizer`'s default config (int8 weights symmetric per channel,
    uint8 activations per tensor), calibration on :func:`latent_batches`,
    ``convert_pt2e`` (batch norm folded), then ``torch.compile`` under
    :func:`inductor_freezing`, warmed up at the batch sizes ``warmup``. Dynamo compiles
    batch 1, 2-15 and 16 or more apart, so the default compiles all three now; a
    later recompilation also runs under freezing. The warning Inductor 2.14's int8
    lowering raises is silenced.

    Args:
        generator: $G(z[, y])$ with ``config.latent_dim`` and ``config.num_classes``.
        calibration: the latent samples that set the activation ranges.
        compile: compile (the int8 kernels); ``False`` keeps the reference graph.
        warmup: the batch sizes compiled now (each new graph takes seconds).

    Returns:
        The quantised generator and a report; with ``compile`` its ``kernels`` count
        the oneDNN calls in the code generated for the last of ``warmup``
        (``onednn.qconv_pointwise`` is int8, ``aten.convolution`` is not counted).
    """
    _, quantize_pt2e, x86 = _import_torchao()
    generator = copy.deepcopy(generator).eval()
    inputs = latent_batches(generator, CalibrationConfig(1, 8, calibration.seed))[0]
    batch = torch.export.Dim("batch")
    exported = torch.export.export(generator, inputs,
                                   dynamic_shapes=tuple({0: batch} for _ in inputs)).module()
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for batch_inputs in latent_batches(generator, calibration):
            prepared(*batch_inputs)                             # observers record ranges
    converted = quantize_pt2e.convert_pt2e(prepared)
    report = _pt2e_coverage(converted)
    if not compile:
        return Int8Generator(converted, None), report
    from torch._inductor.graph import GraphLowering

    compiled = torch.compile(converted, dynamic=True)
    code: list[str] = []                      # Inductor's generated wrapper per graph
    with _drop_log(*_NO_CUDA_LOG), mock.patch.object(GraphLowering, "save_output_code",
                                                     code.append):
        for b in warmup:
            warm = latent_batches(generator, CalibrationConfig(1, b, calibration.seed))[0]
            Int8Generator(converted, compiled)(*warm)
    calls = re.findall(r"torch\.ops\.(onednn|mkldnn)\.(\w+)", code[-1] if code else "")
    report.kernels = dict(Counter(f"{lib}.{op}" for lib, op in calls))
    return Int8Generator(converted, compiled), report


def _pt2e_coverage(graph: nn.Module) -> QuantizationReport:
    assert isinstance(graph, torch.fx.GraphModule)
    layers = []
    for node in graph.graph.nodes:
        name = getattr(node.target, "__name__", "").split(".")[0]
        if node.op == "call_function" and name in _PT2E_LAYERS:
            producers = [getattr(a.target, "__name__", str(a.target)) if a.op == "call_function"
                         else a.op for a in node.args[:2]]
            layers.append((_PT2E_LAYERS[name], producers))
    return _coverage("pt2e", layers)


# --- path 2: ONNX Runtime static QDQ quantisation -------------------------------------

_ONNX_LAYERS = ("Gemm", "MatMul", "Conv", "ConvTranspose")
_ONNX_AXIS_WARNING = "# The axis name"          # both inputs share one batch dimension


def export_onnx(generator: nn.Module, path: str | Path) -> Path:
    """Export $G$ to ONNX (``torch.onnx.export(dynamo=True)``) with a dynamic batch.

    Inputs are named ``z`` (and ``y``), the output ``x``; the weights are stored inside
    the one file (``external_data=False``), so it is what ships and what is measured.
    Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = copy.deepcopy(generator).eval()
    inputs = latent_batches(generator, CalibrationConfig(1, 8))[0]
    names = ["z", "y"][:len(inputs)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ONNX_AXIS_WARNING, category=UserWarning)
        torch.onnx.export(generator, inputs, str(path), dynamo=True, input_names=names,
                          output_names=["x"], dynamic_shapes=tuple({0: "batch"} for _ in names),
                          external_data=False, verbose=False)
    return path


class OnnxGenerator:
    """An ONNX Runtime session (CPU, 1 intra-op thread by default) called like $G$.

    Args:
        path: the ``.onnx`` file. threads: intra-op threads.
        optimized_path: where to write the graph after ONNX Runtime's optimisations
            (the kernels it will run), or ``None``.
    """

    def __init__(self, path: str | Path, threads: int = 1,
                 optimized_path: str | Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3          # no notice about the optimised file
        if optimized_path is not None:
            options.optimized_model_filepath = str(optimized_path)
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: Tensor) -> Tensor:
        feed = {name: t.detach().cpu().numpy() for name, t in zip(self.input_names, inputs,
                                                                   strict=True)}
        return torch.from_numpy(self.session.run(None, feed)[0])


def onnx_int8(generator: nn.Module, directory: str | Path,
              calibration: CalibrationConfig = CalibrationConfig(),
              per_channel: bool = True) -> tuple[OnnxGenerator, QuantizationReport]:
    """Static int8 with ONNX Runtime: export, pre-process, ``quantize_static`` (QDQ).

    Writes ``generator.onnx`` (float32), ``generator_pre.onnx`` (shape inference and
    graph optimisation, what ONNX Runtime asks for before quantising),
    ``generator_int8.onnx`` (QuantizeLinear/DequantizeLinear pairs: uint8 activations,
    int8 weights, per channel) and ``generator_int8_optimized.onnx`` (what the CPU
    runtime makes of it) in ``directory``.

    Returns:
        The int8 session and a report: ``int8``/``float32`` from the QDQ graph (what
        was annotated), ``kernels`` the node types of the optimised graph (``QLinearConv``
        and ``QGemm`` are int8; a ``ConvTranspose`` left there runs in float32).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    directory = Path(directory)
    source = export_onnx(generator, directory / "generator.onnx")
    pre = directory / "generator_pre.onnx"
    quant_pre_process(str(source), str(pre))
    feeds = [{name: t.numpy() for name, t in zip(("z", "y"), batch, strict=False)}
             for batch in latent_batches(generator, calibration)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    target = directory / "generator_int8.onnx"
    quantize_static(str(pre), str(target), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    optimized = directory / "generator_int8_optimized.onnx"
    session = OnnxGenerator(target, optimized_path=optimized)
    nodes = onnx.load(str(target)).graph.node
    producer = {output: node.op_type for node in nodes for output in node.output}
    report = _coverage("onnxruntime", [
        (node.op_type, [producer.get(i, "initializer") for i in node.input])
        for node in nodes if node.op_type in _ONNX_LAYERS])
    report.kernels = dict(Counter(node.op_type for node in onnx.load(str(optimized)).graph.node))
    return session, report


# --- path 3: dynamic int8, where it loses ---------------------------------------------

def dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with torchao's dynamic int8 on every ``nn.Linear``.

    ``quantize_(model, Int8DynamicActivationInt8WeightConfig())``: int8 weights per
    channel, activations quantised per token at each call. Measuring its range, rounding
    and rescaling costs time the int8 matrix product must win back; on small layers
    (and in eager mode) it does not, so this is slower than float32 there.
    """
    torchao_quantization, _, _ = _import_torchao()
    model = copy.deepcopy(model).eval()
    config = torchao_quantization.Int8DynamicActivationInt8WeightConfig()
    torchao_quantization.quantize_(model, config)                  # in place
    return model

"""Latent-space widgets that still show something when nobody moves a slider.

:class:`LatentSliders` puts one ``ipywidgets`` slider on each of a few latent dimensions
and redraws the decoded image when one moves. A built book or a headless test run has
no kernel to call back, so :func:`show_latent_sliders` displays the widget *and* the
static figure of its default state; :func:`traversal_figure` and
:func:`interpolation_figure` are the static views (a grid of decoded images).

The decoder is any callable from latents ``(B, D)`` to images ``(B, C, H, W)`` in
$[-1, 1]$ (e.g. :meth:`aigc_course.models.vae.ConvVAE.decode_mean`), so GAN and
diffusion chapters can reuse these helpers. :class:`ClassSwitch` is the conditional
version: a slider along the path between two latents and a class selector, for any
``generate(z, y)`` (a class-conditional GAN's generator); :func:`class_switch_figure` is
its static view (same latents, every class).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import torch
from matplotlib.figure import Figure

from aigc_course.viz import image_grid

if TYPE_CHECKING:
    from ipywidgets import ValueWidget

Tensor = torch.Tensor
Decoder = Callable[[Tensor], Tensor]
ConditionalDecoder = Callable[[Tensor, Tensor], Tensor]
Interpolation = Literal["linear", "slerp"]


def _check_z(z: Tensor) -> Tensor:
    if z.ndim != 1:
        raise ValueError(f"z must be one latent vector (D,), got shape {tuple(z.shape)}")
    return z.detach().float()


def traversal_latents(z: Tensor, dims: Sequence[int], span: float = 3.0,
                      steps: int = 9) -> Tensor:
    """Copies of ``z`` ``(D,)`` with one dimension swept over ``[-span, span]``.

    Returns:
        ``(len(dims) * steps, D)``: row ``i`` sweeps ``dims[i]``.
    """
    z = _check_z(z)
    bad = [d for d in dims if not 0 <= d < len(z)]
    if bad:
        raise ValueError(f"dims {bad} out of range for a {len(z)}-d latent")
    values = torch.linspace(-span, span, steps)
    rows = []
    for d in dims:
        block = z.repeat(steps, 1)                                       # (steps, D)
        block[:, d] = values
        rows.append(block)
    return torch.cat(rows)                                               # (len(dims)*steps, D)


def interpolate_latents(z0: Tensor, z1: Tensor, steps: int = 10,
                        mode: Interpolation = "linear") -> Tensor:
    """Latents on the path from ``z0`` to ``z1`` ``(D,)``: ``(steps, D)``.

    ``"slerp"`` follows the great circle (Shoemake 1985), keeping the norm near that
    of typical Gaussian samples; ``"linear"`` cuts through the low-norm middle.
    """
    z0, z1 = _check_z(z0), _check_z(z1)
    if mode not in ("linear", "slerp"):
        raise ValueError(f"unknown mode {mode!r}; valid: linear, slerp")
    t = torch.linspace(0, 1, steps)[:, None]                              # (steps, 1)
    if mode == "linear":
        return (1 - t) * z0 + t * z1
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


@torch.no_grad()
def traversal_figure(decode: Decoder, z: Tensor, dims: Sequence[int], span: float = 3.0,
                     steps: int = 9, title: str | None = None) -> Figure:
    """A grid: one row per latent dimension in ``dims``, swept over ``[-span, span]``."""
    images = decode(traversal_latents(z, dims, span, steps))
    return image_grid(images, nrow=steps, title=title or f"latent traversal, dims {list(dims)}")


@torch.no_grad()
def interpolation_figure(decode: Decoder, z0: Tensor, z1: Tensor, steps: int = 10,
                         mode: Interpolation = "linear", title: str | None = None) -> Figure:
    """One row of decoded images along the path from ``z0`` to ``z1``."""
    images = decode(interpolate_latents(z0, z1, steps, mode))
    return image_grid(images, nrow=steps, title=title or f"{mode} interpolation")


class _LiveFigure:
    """A widget whose figure is redrawn (into ``self.output``) when a control changes."""

    figure: Figure

    def render(self) -> Figure:
        raise NotImplementedError

    def _changed(self, _change: object) -> None:
        from IPython.display import display

        self.figure = self.render()
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)

    def _wire(self, controls: Sequence[ValueWidget]) -> None:
        import ipywidgets as widgets

        self.output = widgets.Output()
        self.figure = self.render()
        for control in controls:
            control.observe(self._changed, names="value")
        self.widget = widgets.VBox([*controls, self.output])

    def show(self) -> None:
        """Display the widget and, below it, the static figure of its current state."""
        from IPython.display import display

        display(self.widget)
        display(self.figure)


class LatentSliders(_LiveFigure):
    """Sliders on a few latent dimensions and the image they decode to.

    Args:
        decode: latents ``(B, D)`` -> images ``(B, C, H, W)`` in $[-1, 1]$.
        z: the starting latent ``(D,)`` (the sliders' default state).
        dims: the dimensions that get a slider.
        span: slider range ``[-span, span]``.

    Attributes:
        widget: the ``ipywidgets.VBox`` to display (sliders above an ``Output``).
        figure: the figure of the current state (redrawn when a slider moves).
    """

    def __init__(self, decode: Decoder, z: Tensor, dims: Sequence[int] = (0, 1, 2, 3),
                 span: float = 3.0) -> None:
        import ipywidgets as widgets

        self.decode, self.z, self.dims = decode, _check_z(z).clone(), list(dims)
        traversal_latents(self.z, self.dims, span, 2)                    # validates dims
        self.sliders = [widgets.FloatSlider(value=float(self.z[d]), min=-span, max=span,
                                            step=0.1, description=f"z[{d}]",
                                            continuous_update=False) for d in self.dims]
        self._wire(self.sliders)

    def latent(self) -> Tensor:
        """The latent the sliders currently encode, ``(D,)``."""
        z = self.z.clone()
        for d, slider in zip(self.dims, self.sliders, strict=True):
            z[d] = slider.value
        return z

    @torch.no_grad()
    def render(self) -> Figure:
        """The decoded image of :meth:`latent` as a figure."""
        values = ", ".join(f"z[{d}]={s.value:+.1f}" for d, s in zip(self.dims, self.sliders,
                                                                   strict=True))
        title = values if len(values) < 30 else "the sliders' current state"
        return image_grid(self.decode(self.latent()[None]), nrow=1, scale=0.8, title=title)


def show_latent_sliders(decode: Decoder, z: Tensor, dims: Sequence[int] = (0, 1, 2, 3),
                        span: float = 3.0) -> LatentSliders:
    """Display the slider widget and, below it, its default state as a static figure.

    Live in Jupyter, the widget redraws as the sliders move; in a built book or a
    headless run the static figure is what the reader sees.
    """
    sliders = LatentSliders(decode, z, dims, span)
    sliders.show()
    return sliders


def _check_label(label: int, num_classes: int) -> int:
    if not 0 <= label < num_classes:
        raise ValueError(f"label must be in 0..{num_classes - 1}, got {label}")
    return int(label)


@torch.no_grad()
def class_switch_figure(generate: ConditionalDecoder, z: Tensor, num_classes: int,
                        title: str | None = None) -> Figure:
    """Each latent in ``z`` ``(R, D)`` drawn as every class: an ``R x num_classes`` grid.

    In a class-conditional generator the label sets *what* is drawn and $z$ the rest
    (stroke width, slant): along a row the style stays while the class changes.
    """
    if z.ndim != 2:
        raise ValueError(f"z must be (R, D) latents, got shape {tuple(z.shape)}")
    rows = z.shape[0]
    z_all = z.detach().float().repeat_interleave(num_classes, dim=0)     # (R*K, D)
    y_all = torch.arange(num_classes).repeat(rows)                       # (R*K,)
    return image_grid(generate(z_all, y_all), nrow=num_classes,
                      title=title or "one latent per row, classes 0..K-1 along it")


class ClassSwitch(_LiveFigure):
    """A slider along the path ``z0 -> z1`` and a class selector for a conditional generator.

    Args:
        generate: ``(z (B, D), y (B,))`` -> images ``(B, C, H, W)`` in $[-1, 1]$.
        z0, z1: the path's ends ``(D,)``; the slider moves $t \\in [0, 1]$ along it.
        num_classes: the labels the selector offers.
        label: the default class.
        steps: images along the path (the slider picks one of them).
        mode: ``"slerp"`` (default) or ``"linear"`` interpolation.

    Attributes:
        widget: the ``ipywidgets.VBox`` to display; figure: the current state's figure.
    """

    def __init__(self, generate: ConditionalDecoder, z0: Tensor, z1: Tensor, num_classes: int,
                 label: int = 0, steps: int = 8, mode: Interpolation = "slerp") -> None:
        import ipywidgets as widgets

        self.generate, self.num_classes = generate, num_classes
        self.path = interpolate_latents(z0, z1, steps, mode)             # (steps, D)
        self.t = widgets.IntSlider(value=0, min=0, max=steps - 1, description="step",
                                   continuous_update=False)
        self.label = widgets.Dropdown(options=list(range(num_classes)),
                                      value=_check_label(label, num_classes),
                                      description="class")
        self._wire([self.t, self.label])

    @torch.no_grad()
    def render(self) -> Figure:
        """The whole path as the selected class, and the current latent as every class."""
        y = torch.full((len(self.path),), int(self.label.value))
        path_images = self.generate(self.path, y)                        # (steps, C, H, W)
        z = self.path[self.t.value][None].repeat(self.num_classes, 1)   # (K, D)
        class_images = self.generate(z, torch.arange(self.num_classes))  # (K, C, H, W)
        width = max(len(path_images), len(class_images))
        rows = [torch.cat([r, -torch.ones(width - len(r), *r.shape[1:])])  # pad with black
                for r in (path_images, class_images)]                    # 2 x (width, C, H, W)
        return image_grid(torch.cat(rows), nrow=width, scale=0.8,
                          title=f"top: the path as class {self.label.value}; bottom: step "
                                f"{self.t.value} as every class")


def show_class_switch(generate: ConditionalDecoder, z0: Tensor, z1: Tensor, num_classes: int,
                      label: int = 0, steps: int = 8) -> ClassSwitch:
    """Display :class:`ClassSwitch` and the static figure of its default state."""
    explorer = ClassSwitch(generate, z0, z1, num_classes, label, steps)
    explorer.show()
    return explorer


class TextSlider:
    """A temperature slider and the text a language model writes at that temperature.

    Args:
        generate: ``temperature -> text`` (e.g. a seeded
            :meth:`aigc_course.train.gpt.LanguageModel.generate_text`).
        temperature: the slider's default.
        low, high: the slider's range ($\\tau \\ge 0$; 0 is greedy decoding).

    Attributes:
        widget: the ``ipywidgets.VBox`` to display (the slider above an ``Output``).
        text: the text of the current state (rewritten when the slider moves).
    """

    def __init__(self, generate: Callable[[float], str], temperature: float = 0.8,
                 low: float = 0.0, high: float = 2.0) -> None:
        import ipywidgets as widgets

        if not 0 <= low <= temperature <= high:
            raise ValueError(f"need 0 <= low <= temperature <= high, got {low}, "
                             f"{temperature}, {high}")
        self.generate = generate
        self.slider = widgets.FloatSlider(value=temperature, min=low, max=high, step=0.1,
                                          description="temperature",
                                          continuous_update=False)
        self.output = widgets.Output()
        self.text = self.render()
        self.slider.observe(self._changed, names="value")
        self.widget = widgets.VBox([self.slider, self.output])

    def render(self) -> str:
        """The text at the slider's temperature, under a one-line heading."""
        return f"temperature {self.slider.value:.1f}:\n{self.generate(self.slider.value)}"

    def _changed(self, _change: object) -> None:
        self.text = self.render()
        self.output.clear_output(wait=True)
        with self.output:
            print(self.text)

    def show(self) -> None:
        """Display the widget and, below it, the text of its default state (what a built
        book or a headless run shows: no kernel answers the slider there)."""
        from IPython.display import display

        display(self.widget)
        print(self.text)

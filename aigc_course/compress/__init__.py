"""Compression (chapter 09): what makes a generator smaller or faster, measured.

* :mod:`~aigc_course.compress.measure` -- latency on one thread in alternated rounds, size
  on disk, judge FID on fixed latents, the trade-off table and its Pareto front.
* :mod:`~aigc_course.compress.prune` -- unstructured magnitude pruning (zeros) and
  structured channel pruning that rebuilds smaller layers.
* :mod:`~aigc_course.compress.quantize` -- fake quantisation, static int8 with torchao's
  PT2E and with ONNX Runtime, dynamic int8.
* :mod:`~aigc_course.compress.distill` -- a generator trained to match a teacher's images.
* :mod:`~aigc_course.compress.distill_diffusion` -- progressive distillation of a DDPM's
  sampler (each round halves the steps).
* :mod:`~aigc_course.compress.methods` -- ``aigc-course compress``: a checkpoint in, a
  checkpoint of the same kind out.

The fewer-steps solver, DPM-Solver++(2M), is an algorithm on a network like DDIM, so it
lives in :mod:`aigc_course.diffusion.dpm_solver`.
"""

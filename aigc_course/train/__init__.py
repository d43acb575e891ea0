"""Plain training loops: ``zero_grad -> forward -> loss -> backward -> step`` in view.

One module per kind of training (import the module you need; nothing is re-exported, so
importing one stays light). Training functions seed with :func:`aigc_course.utils.seeded`
and give the caller's random state back; none switches on deterministic algorithms.

* :mod:`aigc_course.train.toy2d` -- the three families (GAN, VAE, diffusion) on 2-D
  points (chapter 02);
* :mod:`aigc_course.train.gan` -- the GAN loop, its recipes and the model kind ``gan``
  (chapter 03); :mod:`aigc_course.train.gan_study` -- its mode-collapse studies;
* :mod:`aigc_course.train.vae` -- the convolutional VAE and the kind ``vae`` (chapter 04);
* :mod:`aigc_course.train.diffusion` -- DDPM on images with EMA and the kind ``ddpm``
  (chapter 05);
* the judges' training is part of the metrics (:mod:`aigc_course.metrics.judge`);
* :mod:`aigc_course.train.engine` -- what every loop above shares (chapter 07): precision,
  clipping, full-state checkpoints that resume bit-identically, data parallelism over
  ``torch.distributed``; :mod:`aigc_course.train.launch` -- runs as processes (killed and
  resumed, ``torchrun``);
* chapter 07's studies on those loops: :mod:`aigc_course.train.optim_study` (optimisers,
  schedules, clipping, EMA on the GPT), :mod:`aigc_course.train.throughput` (precision,
  ``channels_last``, ``torch.compile``, loader workers), :mod:`aigc_course.train.memorisation`
  (overfitting and copies against data size), :mod:`aigc_course.train.search` (Optuna);
* :mod:`aigc_course.train.ema` -- the exponential moving average of weights;
* :mod:`aigc_course.train.report` -- :func:`~aigc_course.train.report.model_report`, the
  metrics of any model's samples.

The model-kind contract they fulfil is :mod:`aigc_course.kinds`; the checkpoint format
is :mod:`aigc_course.checkpoint`.
"""

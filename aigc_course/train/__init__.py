"""Plain training loops: ``zero_grad -> forward -> loss -> backward -> step`` in view.

One module per kind of training (import the module you need; nothing is re-exported, so
importing :mod:`aigc_course.train.checkpoint` stays light):

* :mod:`aigc_course.train.toy2d` -- the three families (GAN, VAE, diffusion) on 2-D
  points, and chapter 02's profile;
* :mod:`aigc_course.train.vae` -- the convolutional VAE of chapter 04;
* :mod:`aigc_course.train.diffusion` -- DDPM on images with EMA, chapter 05;
* :mod:`aigc_course.train.checkpoint` -- the checkpoint format every chapter writes.
"""

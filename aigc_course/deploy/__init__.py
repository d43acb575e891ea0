"""Deployment and monitoring (chapter 10): from a checkpoint to a service you can trust.

* :mod:`~aigc_course.deploy.export` -- ``torch.export`` (``.pt2``) and ONNX with a dynamic
  batch, run with ONNX Runtime; parity and latency against eager.
* :mod:`~aigc_course.deploy.batching` -- dynamic batching: requests that arrive while a
  forward pass runs share the next one, behind a bounded queue.
* :mod:`~aigc_course.deploy.service` -- the FastAPI app behind ``aigc-course serve``
  (image kinds; chapter 06's ``gpt`` on its own route).
* :mod:`~aigc_course.deploy.server` -- uvicorn with one or several workers, and
  :class:`~aigc_course.deploy.server.LocalServer`, the service as a subprocess on a free
  loopback port (tests, the chapter, the benchmarks).
* :mod:`~aigc_course.deploy.drift` -- a drift monitor on the outputs, calibrated on
  healthy windows for a stated false-alarm rate.
* :mod:`~aigc_course.deploy.loadtest` -- a bounded closed-loop load test against
  127.0.0.1 only.
* :mod:`~aigc_course.deploy.benchmark` -- batching off against on, and resident memory
  under load.
"""

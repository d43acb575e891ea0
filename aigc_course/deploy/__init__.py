"""Deployment and monitoring (chapter 10): from a checkpoint to a service you can trust.

* :mod:`~aigc_course.deploy.export` -- ``torch.export`` (``.pt2``) and ONNX with a dynamic
  batch, run with ONNX Runtime; parity and latency against eager.
* :mod:`~aigc_course.deploy.batching` -- dynamic batching: requests that arrive within a
  few milliseconds share one forward pass, behind a bounded queue.
* :mod:`~aigc_course.deploy.service` -- the FastAPI app behind ``aigc-course serve``.
* :mod:`~aigc_course.deploy.drift` -- a drift monitor on the outputs, calibrated on
  healthy windows.
* :mod:`~aigc_course.deploy.loadtest` -- a bounded load test against 127.0.0.1.
"""

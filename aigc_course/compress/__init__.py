"""Compression: pruning, quantisation, distillation, fewer sampling steps (chapter 09)."""

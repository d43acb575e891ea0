"""Networks (``nn.Module``s and their configs); the algorithms that use them live elsewhere."""

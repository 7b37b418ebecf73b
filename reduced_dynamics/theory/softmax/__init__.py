"""Softmax-attention theory (softmax_features.md): the exact finite-N expectations (``exact``: SF-19a/b/c, and the
Laplace quadrature of the count generating function that the flows use) and the flows on M (``features``: SF-13,
SF-21, SF-24)."""

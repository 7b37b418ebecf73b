"""Sparse-regression theory (sparse_multihead.md): the algorithms (``algorithms``), tuned risks (``risk``),
closed forms (``formulas``), the restricted flow of §8 (``restricted_flow``) and risk against depth
(``multihead``)."""

"""rd_deep_linear: the deep-linear family of reduced_dynamics, installed as a plug-in (docs/adding-a-family.md).

Two-layer linear network y_hat = W2 W1 x on whitened regression data (Saxe, McClelland, Ganguli, ICLR 2014);
equations DL-1 to DL-8 are defined in docs/theory/deep_linear.md.
"""

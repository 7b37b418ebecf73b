"""Linear-attention theory (linear_attention.md): the shared reduced flow (``flow``), merged key-query
attn-m (``merged``: LA-22, closed form LA-25 to LA-28) and separate key-query attn-s (``separate``: LA-29 to
LA-34)."""

"""SymPy derivations of the deep-linear family (its own package, so that a derivation's hash covers only
derivation code: ``reduced_dynamics.compile.derivation_hash`` reads every module of this folder)."""

"""Concepts and neurons: CRAFT per class (NMF of patch activations, Sobol importance, concept maps), neuron
selection (listed, top-k relevant, random sample), dataset examples and polysemantic clusters.

Importing this package registers nothing: the composition root (:mod:`atlas.app`) installs its target
sources, run stages and resources; its pages live in :mod:`atlas.sitegen.pages`.
"""

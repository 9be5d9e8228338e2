"""Concepts and neurons: CRAFT per class (NMF of patch activations, Sobol importance, concept maps), neuron
selection (listed, top-k relevant, random sample), dataset examples and polysemantic clusters.

Registration (targets sources, run stages, resources, site pages) happens in the submodules listed in
``atlas.extensions.MODULES``; importing this package registers nothing.
"""

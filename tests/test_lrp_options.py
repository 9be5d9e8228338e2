"""zennit LRP (atlas.relevance) as the option the seeded and neuron issues name: an attribution method for
attribution visualization and a relevance function for picking a class's top-k neurons, on the real Lite0."""
import numpy as np
import torch

from atlas.data import open_pool
from atlas.relevance import ATTRIBUTIONS, channel_attribution


def test_lrp_attribution_has_the_layers_shape_and_depends_on_the_class(lite0):
    x = open_pool("bundled").reference_images(285, 2, 224)
    lrp = ATTRIBUTIONS.get("lrp")
    cat = lrp(lite0, x, [285, 285], "blocks.4")
    acts = lite0.activations(x, ["blocks.4"])["blocks.4"]
    assert cat.shape == acts.shape and torch.isfinite(cat).all() and cat.abs().sum() > 0
    other = lrp(lite0, x, [967, 967], "blocks.4")  # espresso: another class, another map
    assert not torch.allclose(cat, other)


def test_lrp_ranks_neurons_like_activation_x_gradient_roughly(lite0):
    """Top-k neurons by LRP and by act x grad are different estimators of the same thing: their channel
    scores correlate positively on the class's own images."""
    x = open_pool("bundled").reference_images(285, 2, 224)
    lrp = channel_attribution("lrp", lite0, x, [285, 285], "blocks.6").mean(0).numpy()
    axg = channel_attribution("act_x_grad", lite0, x, [285, 285], "blocks.6").mean(0).numpy()
    assert lrp.shape == axg.shape == (320,)
    assert np.corrcoef(lrp, axg)[0, 1] > 0.5  # 0.82 measured

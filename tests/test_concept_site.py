"""End to end on EfficientNet-Lite0 (few steps): CRAFT concepts, selected and polysemantic neurons, their
pages on the site, every image on them resolves, importances are non-negative and sum to at most 100 %,
and NMF reconstruction errors are reported and fall with K."""
import json
import re

import pytest

from atlas.sitegen.check import check_site
from atlas.sitegen.paths import unversioned

@pytest.fixture(scope="module")
def built(concept_build):
    """The concept/neuron build shared with tests/test_layer_site.py (conftest.py)."""
    return concept_build


def test_concept_and_neuron_pages_exist_and_every_image_resolves(built):
    site = built / "site"
    assert check_site(site) == []
    for c in (285, 967):
        for k in range(3):
            page = site / "efficientnet_lite0" / "concept" / f"{c:04d}-{k:02d}.html"
            html = page.read_text()
            assert "Top patches" in html and "Where the concept is" in html
            for src in re.findall(r'<img[^>]+src="([^"]+)"', html):
                assert (page.parent / src).resolve().is_file(), src
        cls = (site / "efficientnet_lite0" / "class" / f"{c:04d}.html").read_text()
        assert cls.count("concept-card") == 3 and "Concepts (CRAFT)" in cls
    # the two most important concepts are visualised (MACO only), the third is not
    c0 = (site / "efficientnet_lite0" / "concept" / "0285-00.html").read_text()
    c2 = (site / "efficientnet_lite0" / "concept" / "0285-02.html").read_text()
    assert re.search(r"img/maco/concept-0285-00-s0\.[0-9a-f]{20}-view\.webp", c0) and "img/fourier/concept" not in c0
    assert "not visualised in this build" in c2
    # each concept page has a versioned copy (the hash of its bank, figures and neighbours) that never changes
    copies = [p for p in (site / "efficientnet_lite0" / "concept").glob("0285-00.*.html")]
    assert len(copies) == 1 and unversioned(copies[0].name) == ("0285-00.html", copies[0].name.split(".")[1])
    assert "never changes" in copies[0].read_text() and "Top patches" in copies[0].read_text()
    assert "Similar concepts in other classes" in c0 and "0967-0" in c0
    neurons = sorted(p for p in (site / "efficientnet_lite0" / "neuron").glob("blocks.6-*.html")
                     if unversioned(p.name)[1] is None)  # plain permalinks (each has a versioned copy)
    assert len(neurons) == 2 and any(p.name == "blocks.6-0011.html" for p in neurons)
    n11 = (site / "efficientnet_lite0" / "neuron" / "blocks.6-0011.html").read_text()
    assert "Polysemantic: 2 clusters" in n11 and "Dataset examples" in n11 and "listed" in n11
    assert re.search(r"neuron-blocks\.6-0011-k1-s0\.[0-9a-f]{20}-view\.webp", n11)  # cluster k1's figure, versioned
    index = (site / "neurons.html").read_text()
    assert "blocks.6 #11" in index and 'href="neurons.html"' in (site / "index.html").read_text()


def test_importances_and_reconstruction_errors_in_the_store(built):
    summaries = [json.loads(p.read_text()) for p in (built / "store" / "stages" / "craft").glob("*/summary.json")]
    assert sorted(s["class_id"] for s in summaries) == [285, 967]
    for s in summaries:
        assert all(v >= 0 for v in s["share"]) and sum(s["share"]) <= 100 + 1e-9
        errors = [s["errors"][k] for k in sorted(s["errors"], key=int)]
        assert list(map(int, sorted(s["errors"], key=int))) == [1, 2, 3]
        assert errors == sorted(errors, reverse=True) and errors[0] > errors[-1]


def test_visualised_concepts_and_neurons_are_optimised(built):
    metas = [json.loads(p.read_text()) for p in (built / "store" / "jobs").glob("*/meta.json")]
    kinds = {}
    for m in metas:
        if m["target"].get("layer") == "blocks.0":
            continue  # the whole layer: tests/test_layer_site.py
        kinds.setdefault(m["target"].get("cluster") is not None and "cluster" or m["target"]["kind"], []).append(m)
    assert len(kinds["concept"]) == 4 and len(kinds["cluster"]) == 2 and len(kinds["neuron"]) == 2
    for m in kinds["concept"] + kinds["cluster"] + kinds["neuron"]:
        assert m["method"] == "maco" and m["history"][-1] > m["history"][0]


def test_class_page_has_a_cluster_chart_of_its_patches_coloured_by_concept(built):
    """Each class page draws every CRAFT patch of the class at the NMF-weighted average of the concept
    vertices, coloured by its dominant concept (checked against the stored U)."""
    import numpy as np

    from atlas.sitegen.pages.cluster_chart import radviz
    from atlas.sitegen.tsne_svg import PALETTE

    for c in (285, 967):
        bank = next(p for p in (built / "store" / "stages" / "craft").glob("*/summary.json")
                    if json.loads(p.read_text())["class_id"] == c).parent
        U = np.load(bank / "bank.npz")["U"]
        html = (built / "site" / "efficientnet_lite0" / "class" / f"{c:04d}.html").read_text()
        svg = re.search(r'<svg class="cluster".*?</svg>', html, re.S).group(0)
        dots = re.findall(r'<circle cx="[^"]+" cy="[^"]+" r="2.6" fill="([^"]+)"', svg)
        expected = radviz(U)
        assert len(dots) == len(expected) == min(400, int((U.sum(1) > 0).sum())) > 0
        assert dots == [PALETTE[int(k)] for k in expected[:, 2]]
        assert svg.count('class="vertex"') == 3 and "patches of" in html


def test_radviz_puts_pure_patches_on_their_vertex_and_mixtures_between():
    import numpy as np

    from atlas.sitegen.pages.cluster_chart import radviz

    U = np.array([[2.0, 0, 0, 0], [0, 0, 5.0, 0], [1.0, 0, 1.0, 0], [0, 0, 0, 0], [1.0, 3.0, 0, 0]])
    p = radviz(U)
    assert len(p) == 4  # the all-zero patch is left out
    assert np.allclose(p[0, :2], [0, -1]) and p[0, 2] == 0  # concept 0: the top vertex
    assert np.allclose(p[1, :2], [0, 1]) and p[1, 2] == 2  # concept 2: opposite
    assert np.allclose(p[2, :2], [0, 0])  # an even mixture of opposite concepts: the centre
    assert np.allclose(p[3, :2], [0.75, -0.25]) and p[3, 2] == 1
    assert len(radviz(np.random.default_rng(0).random((1000, 3)), max_points=50)) == 50


def test_concept_alignment_lists_the_most_similar_concepts_of_other_classes_best_first():
    """The partial sort of `alignment` gives what a full sort of every row gives: the `top` concepts of other
    classes with the highest cosine, best first, never the concept's own class."""
    import numpy as np

    from atlas.sitegen.pages.concepts import alignment

    rng = np.random.default_rng(3)
    banks = {c: np.abs(rng.standard_normal((int(rng.integers(1, 5)), 16))).astype(np.float32) for c in range(40)}
    rows = [(c, k) for c, W in banks.items() for k in range(W.shape[0])]
    V = np.concatenate(list(banks.values())).astype(np.float64)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    got = alignment(banks, top=5)
    assert set(got) == set(rows)
    for i, (c, k) in enumerate(rows):
        cos = V @ V[i]
        want = sorted((j for j, (oc, _) in enumerate(rows) if oc != c), key=lambda j: -cos[j])[:5]
        assert [(oc, ok) for oc, ok, _ in got[(c, k)]] == [rows[j] for j in want]
        assert np.allclose([x for *_, x in got[(c, k)]], cos[want], atol=1e-5)
    few = alignment({0: banks[0], 1: banks[1]}, top=50)  # fewer concepts than `top`: all of the other class
    assert all(len(v) == banks[1 - c].shape[0] for (c, _), v in few.items())

"""One sweep over the pool for everything a whole-plan run reads from its patches (issue 20: "a scan shared
by everything that needs it").

The dataset examples of the planned neurons (one ``top_patches`` scan per layer, :mod:`.examples`) and the
pool examples of the CRAFT concepts (:mod:`.concept_examples`) are all read from the same patches of the same
source images (the pool's first ``[neurons] max_images``, cut on the same grid). Asked one after the other,
each stage cut, resized and ran every patch again: the demo swept its pool three times (``blocks.6`` and
``blocks.0`` neurons, concepts at the last feature layer). This stage, run after CRAFT and before them, asks
all their questions in one sweep (:func:`atlas.data.patches.ask`: one forward pass per batch of patches,
stopped at the deepest layer asked) and stores each answer where its own stage looks for it, so those stages
then find everything stored and only cut their mosaics. Shards leave it to their own stages (each shard
scans only what its jobs need), as does a run with a single question (nothing to share).
"""
from __future__ import annotations

from ..config import neuron_config
from ..data.patches import TopChannelPatches, ask, put_top_patches
from .concept_examples import STAGE as CONCEPT_EXAMPLES
from .concept_examples import concept_example_files, concept_examples_needed, concept_question
from .examples import layers_to_scan, planned_channels, scan_key


def pool_scan_stage(runner, model: str) -> None:
    """Run stage: the neurons' ``top_patches`` scans and the concepts' pool examples still missing for
    ``model``, from one sweep over the pool (whole-plan runs with at least two of them)."""
    if runner.scope is not None:
        return
    by_layer, _ = planned_channels(runner.cfg, model)
    layers = layers_to_scan(runner, model, by_layer)
    concepts = concept_examples_needed(runner, model)
    if len(layers) + (concepts is not None) < 2:
        return
    from ..progress import stage

    ncfg = neuron_config(runner.cfg)
    handle, pool = runner.context(model).model, runner.pool(model)
    ids = pool.source_ids(ncfg.max_images or None)
    questions = [TopChannelPatches(layer, sorted(by_layer[layer]), ncfg.examples, bottom=True) for layer in layers]
    if concepts is not None:
        questions.append(concept_question(concepts[1], concepts[2], ncfg.examples))
    what = ", ".join(layers + (["concepts"] if concepts is not None else []))
    with stage(f"pool scan · {model} ({what})", len(ids), unit="image", enabled=runner.progress) as bar:
        answers = ask(handle, pool, ids, questions, progress=bar.update)
    for layer, answer in zip(layers, answers):
        put_top_patches(runner.store, scan_key(runner, model, layer, by_layer[layer]), answer)
    if concepts is not None:
        key, _, banks = concepts
        runner.store.cached_stage(CONCEPT_EXAMPLES, key, lambda: concept_example_files(
            handle, pool, banks, ids, answers[-1], key["mosaic"]))

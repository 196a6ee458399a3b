"""Exploring what a trained run learned: the library behind `facegen sample`,
`reconstruct`, `interpolate`, `traverse`, `edit` and `latent-map`.

Every function takes a :class:`~facegen.run.Run` (``facegen.load_run(path)``) and returns
tensors plus an object whose ``picture()`` is a labelled uint8 image, so a notebook can show
it and the CLI can save it.

>>> import facegen
>>> from facegen import explore
>>> from facegen.data import open_packed
>>> run, data = facegen.load_run("runs/demo/vae"), open_packed("data/synth-64")
>>> faces = explore.sample_faces(run, 16, seed=0)                 # (16, 3, 64, 64)
>>> walk = explore.interpolate(run, pairs=2, steps=8)             # walk.picture(), walk.frames()
>>> sweep = explore.traverse(run, data, dims=6)                   # sweep.picture(), sweep.kl
>>> directions = explore.attribute_directions(run, data, ["Smiling"])
>>> edits = explore.edit_faces(run, list(directions.values()), data=data)
>>> points = explore.latent_map(run, data, color_by="identity", method="tsne")
"""

from facegen.explore.edit import (
    AttributeDirection,
    Edits,
    attribute_directions,
    classifier_scores,
    edit_faces,
    load_directions,
    save_directions,
)
from facegen.explore.generate import (
    Reconstructions,
    reconstruct_faces,
    sample_faces,
    sample_grid,
    save_faces,
)
from facegen.explore.interpolate import INTERPOLATIONS, Walk, interpolate, lerp, slerp
from facegen.explore.latent_map import LatentMap, latent_map, save_latent_map
from facegen.explore.traverse import Traversal, save_kl_plot, traverse

__all__ = [
    "INTERPOLATIONS",
    "AttributeDirection",
    "Edits",
    "LatentMap",
    "Reconstructions",
    "Traversal",
    "Walk",
    "attribute_directions",
    "classifier_scores",
    "edit_faces",
    "interpolate",
    "latent_map",
    "lerp",
    "load_directions",
    "reconstruct_faces",
    "sample_faces",
    "sample_grid",
    "save_directions",
    "save_faces",
    "save_kl_plot",
    "save_latent_map",
    "slerp",
    "traverse",
]

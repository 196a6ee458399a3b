"""Attribute classifiers: a small CNN trained on a packed data set's CelebA attributes that
labels faces, real or generated, with one logit per attribute.

Other tools use it to find attribute directions in a generator's latent space
(InterFaceGAN-style: label samples, fit a linear boundary) and to check that an edit along
one changes the attribute it should.

>>> from facegen.classifier import train_classifier, load_classifier
>>> train_classifier("data/synth-64")                   # -> data/synth-64/classifier
>>> classifier = load_classifier("data/synth-64/classifier")
>>> classifier.attribute_logits(faces, "Smiling")       # (N,) float32, > 0: smiling
"""

from facegen.classifier.model import AttributeClassifier, ClassifierConfig
from facegen.classifier.saved import default_classifier_path, load_classifier
from facegen.classifier.train import ClassifierResult, train_classifier

__all__ = [
    "AttributeClassifier",
    "ClassifierConfig",
    "ClassifierResult",
    "default_classifier_path",
    "load_classifier",
    "train_classifier",
]

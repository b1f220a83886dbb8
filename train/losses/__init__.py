"""Training losses, one module per method; each class's docstring carries its formula and paper.

- margin: ``ArcFace``, ``CosFace`` (baselines, and the margin part of the distillation recipes)
- adl: ``AngularDistillation``, ``SampleDistribution``, ``IntermediateAngularDistillation`` (ShrinkTeaNet)
- margin_distillation: ``MarginDistillation``, ``teacher_class_centres``
- neuron_mimic: ``NeuronMimic``, ``NeuronSelection``, ``fisher_ratio``, ``select_neurons`` (Luo et al.)
- transfer: ``CosineKD``, ``init_classifier_from_centres`` (Wang et al.)
- ensemble: ``concat_teachers``, ``mean_teachers``
- relation: ``MutualRelation``, ``hard_negatives`` (CoupleFace's mutual relation distillation)
"""

from shrinkface.train.losses.adl import (
    AngularDistillation,
    IntermediateAngularDistillation,
    SampleDistribution,
)
from shrinkface.train.losses.common import LossInputError, ProjectionHead
from shrinkface.train.losses.ensemble import concat_teachers, ensemble_weights, mean_teachers
from shrinkface.train.losses.margin import (
    ArcFace,
    CosFace,
    CosineClassifier,
    arc_margin_target,
    arcface_logits,
)
from shrinkface.train.losses.margin_distillation import MarginDistillation, teacher_class_centres
from shrinkface.train.losses.neuron_mimic import NeuronMimic, NeuronSelection, fisher_ratio, select_neurons
from shrinkface.train.losses.relation import MutualRelation, hard_negatives
from shrinkface.train.losses.transfer import CosineKD, init_classifier_from_centres

__all__ = [
    "AngularDistillation",
    "ArcFace",
    "CosFace",
    "CosineClassifier",
    "CosineKD",
    "IntermediateAngularDistillation",
    "LossInputError",
    "MarginDistillation",
    "MutualRelation",
    "NeuronMimic",
    "NeuronSelection",
    "ProjectionHead",
    "SampleDistribution",
    "arc_margin_target",
    "arcface_logits",
    "concat_teachers",
    "ensemble_weights",
    "fisher_ratio",
    "hard_negatives",
    "init_classifier_from_centres",
    "mean_teachers",
    "select_neurons",
    "teacher_class_centres",
]

"""Train on synthetic, test on real: segmentation net, overlap tracker, CTC scoring, the comparison.

Entry points: :func:`~napari_bvdm.evaluate.experiment.run_experiment` (the four-training-set
comparison, a job generator) and the ``bvdm evaluate`` command. Building blocks:
:mod:`.data` (reading, temporal split, ground-truth window), :mod:`.segnet` (UNet + watershed),
:mod:`.train` (training job), :mod:`.tracker` (overlap tracker) and :mod:`.scoring` (``NN_RES``
writer, py-ctcmetrics).
"""

from .experiment import TRAINING_SETS, ExperimentConfig, ExperimentResult, run_experiment
from .scoring import score_result, write_res
from .segnet import SegNetConfig
from .synthetic_sets import SyntheticSetsConfig, make_synthetic_sets
from .tracker import TrackerConfig, track_instances
from .train import TrainConfig, train_segnet

__all__ = [
    "TRAINING_SETS",
    "ExperimentConfig",
    "ExperimentResult",
    "run_experiment",
    "score_result",
    "write_res",
    "SegNetConfig",
    "SyntheticSetsConfig",
    "make_synthetic_sets",
    "TrackerConfig",
    "track_instances",
    "TrainConfig",
    "train_segnet",
]

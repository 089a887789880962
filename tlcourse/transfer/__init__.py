"""Transfer learning in a few calls: freeze, replace the head, layer-wise learning rates, cached features, fine-tune.

The network is seen as a list of **stages** from the input to the output (:func:`stages`): the
top-level children that hold parameters, with a list of blocks (``features`` of EfficientNet/
MobileNet/VGG, ``blocks`` of our ViT, ``encoder.layers`` of torchvision's ViT) opened into its blocks.
The last stage holds the classification head. On top of that:

* :func:`freeze` / :func:`unfreeze` / :func:`freeze_to` by depth (the first ``k`` stages) or by name
  (prefixes or ``fnmatch`` patterns of parameter names); :func:`trainable_report` says what trains;
* :func:`replace_head` swaps the final ``nn.Linear`` for one with a new number of classes;
* :func:`param_groups` gives each stage its learning rate: ``lr`` for the head, times ``decay`` per
  stage going down, or spread geometrically from ``lr / spread`` to ``lr`` (fast.ai's ``slice``);
* :func:`extract_features` runs the backbone **once** (eval mode, no gradients) and returns a
  :class:`Features` whose ``loader()`` trains a head on the cached tensors, optionally kept on disk;
* :func:`fine_tune`: train the head with the backbone frozen, then unfreeze and train everything
  with spread learning rates, both phases with :func:`tlcourse.training.fit`;
* :func:`freeze_bn_stats` keeps every batch norm on its source statistics; :func:`train_head` trains a
  linear head on cached features; :mod:`~tlcourse.transfer.backbones` loads pretrained networks by name.
"""

from tlcourse.transfer.batchnorm import freeze_bn_stats
from tlcourse.transfer.features import Features, extract_features, feature_cache_key, train_head
from tlcourse.transfer.fine_tune import FineTuneResult, fine_tune
from tlcourse.transfer.freezing import StageReport, TrainableReport, freeze, freeze_to, trainable_report, unfreeze
from tlcourse.transfer.heads import HEAD_ATTRIBUTES, head_name, replace_head
from tlcourse.transfer.layerwise import param_groups, stage_lrs
from tlcourse.transfer.stages import Stage, stages

__all__ = [
    "HEAD_ATTRIBUTES",
    "Features",
    "FineTuneResult",
    "Stage",
    "StageReport",
    "TrainableReport",
    "extract_features",
    "feature_cache_key",
    "fine_tune",
    "freeze",
    "freeze_bn_stats",
    "freeze_to",
    "head_name",
    "param_groups",
    "replace_head",
    "stage_lrs",
    "stages",
    "train_head",
    "trainable_report",
    "unfreeze",
]

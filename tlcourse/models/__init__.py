"""Networks of the course, each assembled from small blocks and a configuration."""

from tlcourse.models.alexnet_vgg import (
    ALEXNET_CONFIGS,
    VGG,
    VGG_CONFIGS,
    AlexNet,
    AlexNetConfig,
    ConvSpec,
    ConvStack,
    small_alexnet,
    small_vgg,
)
from tlcourse.models.blocks import ConvNormAct
from tlcourse.models.efficientnet import (
    EFFICIENTNET_LITE_VARIANTS,
    LITE_STAGES,
    PRETRAINED_LITE_VARIANTS,
    EfficientNetLite,
    efficientnet_lite,
    efficientnet_lite0,
    lite_transform,
    load_packaged_weights,
)
from tlcourse.models.inception import GOOGLENET_INCEPTIONS, GoogLeNet, Inception, InceptionSpec, small_googlenet
from tlcourse.models.lenet import LENET_VARIANTS, LeNet5, lenet5
from tlcourse.models.mobilenet import ConvBNAct, DepthwiseSeparableConv, MBConv, SamePad2d
from tlcourse.models.resnet import (
    RESNET_CONFIGS,
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNetConfig,
    resnet,
    resnet18,
    resnet34,
    resnet50,
    resnet_small,
    without_normalization,
)
from tlcourse.models.vit import (
    VIT_CONFIGS,
    EncoderBlock,
    MultiHeadSelfAttention,
    PatchEmbedding,
    VisionTransformer,
    ViTBaselineCNN,
    ViTConfig,
    attention_rollout,
    cls_attention,
    vit,
)

__all__ = [
    "ALEXNET_CONFIGS", "VGG_CONFIGS", "AlexNet", "AlexNetConfig", "ConvSpec", "ConvStack", "VGG",
    "small_alexnet", "small_vgg",
    "GOOGLENET_INCEPTIONS", "GoogLeNet", "Inception", "InceptionSpec", "small_googlenet",
    "EFFICIENTNET_LITE_VARIANTS", "PRETRAINED_LITE_VARIANTS", "LITE_STAGES", "EfficientNetLite", "efficientnet_lite", "efficientnet_lite0",
    "lite_transform", "load_packaged_weights",
    "LENET_VARIANTS", "LeNet5", "lenet5",
    "ConvNormAct", "ConvBNAct", "DepthwiseSeparableConv", "MBConv", "SamePad2d",
    "RESNET_CONFIGS", "BasicBlock", "Bottleneck", "ResNet", "ResNetConfig", "resnet", "resnet18", "resnet34",
    "resnet50", "resnet_small", "without_normalization",
    "VIT_CONFIGS", "EncoderBlock", "MultiHeadSelfAttention", "PatchEmbedding", "VisionTransformer", "ViTBaselineCNN",
    "ViTConfig", "attention_rollout", "cls_attention", "vit",
]

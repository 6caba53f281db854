"""The networks vidderain can build, train and run: one module per network, and the registry of them."""

from vidderain.nets.gated import build_gated_unet
from vidderain.nets.paper import build_paper
from vidderain.nets.registry import ARCHITECTURES, Architecture, count_macs, get_architecture
from vidderain.nets.temporal import build_temporal_unet, start_from_single_frame
from vidderain.nets.unet import build_unet

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "build_gated_unet",
    "build_paper",
    "build_temporal_unet",
    "build_unet",
    "count_macs",
    "get_architecture",
    "start_from_single_frame",
]

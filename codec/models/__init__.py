"""Model architectures, one file per paper, by their registry name."""

from __future__ import annotations

from codec.models.base import PAD_MULTIPLE, LatentCodecModel
from codec.models.channelwise import ChannelwiseAutoregressive
from codec.models.factorized import FactorizedPrior
from codec.models.hyperprior import ScaleHyperprior
from codec.models.meanscale import MeanScaleHyperprior

ARCHITECTURES: dict[str, type[LatentCodecModel]] = {
    FactorizedPrior.name: FactorizedPrior,
    ScaleHyperprior.name: ScaleHyperprior,
    MeanScaleHyperprior.name: MeanScaleHyperprior,
    ChannelwiseAutoregressive.name: ChannelwiseAutoregressive,
}

__all__ = [
    "ARCHITECTURES",
    "ChannelwiseAutoregressive",
    "PAD_MULTIPLE",
    "FactorizedPrior",
    "LatentCodecModel",
    "MeanScaleHyperprior",
    "ScaleHyperprior",
]

"""Parameters and FLOPs that the papers report, keyed by configuration name.

Names are those of :mod:`glore.models.registry` (plain backbones by their timm name). FLOPs in both
papers are multiply-adds (GMACs) at 224x224.

Sources:

- ``GloRe Table 2``: Chen et al., "Graph-Based Global Reasoning Networks", CVPR 2019 (arXiv 1811.12814), ImageNet, ResNet/SE-ResNet/ResNeXt/DPN with
  ``(n, m)`` GloRe units in Res3/Res4.
- ``GCNet Table 8a``: Cao et al., "Global Context Networks" (arXiv 2012.13375), ImageNet, ResNet-50 with one NL / SNL / GC block before
  the last block of c4, or GC (r = 16) in all blocks of c3-c5. GCNet's ResNet-50 counts 3.86 GMACs
  (the original ResNet with the stride on the first 1x1 conv); timm's ResNet-50 (stride on the 3x3
  conv) counts 4.09, so compare GCNet's FLOPs as increments over its baseline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperFigure:
    """One row of a paper's table."""

    source: str            # "GloRe Table 2", "GCNet Table 8a"
    row: str               # the paper's row label
    params_m: float        # parameters, millions
    gmacs: float | None    # multiply-adds / 1e9 at 224x224 (None: not reported)
    baseline: str | None = None   # configuration name of the row's baseline (for increments)


_G2, _G8 = "GloRe Table 2", "GCNet Table 8a"

FIGURES: dict[str, tuple[PaperFigure, ...]] = {
    # GloRe paper Table 2
    "resnet50": (PaperFigure(_G2, "ResNet-50", 25.6, 4.0),
                 PaperFigure(_G8, "ResNet-50 baseline", 25.56, 3.86)),
    "resnet50_glore_0_3": (PaperFigure(_G2, "ResNet-50 + GloRe (0, 3)", 30.5, 5.2, "resnet50"),),
    "resnet50_glore_2_3": (PaperFigure(_G2, "ResNet-50 + GloRe (2, 3)", 31.4, 6.0, "resnet50"),),
    "seresnet50": (PaperFigure(_G2, "SE-ResNet-50", 28.1, 4.0),),
    "seresnet50_glore_0_3": (PaperFigure(_G2, "SE-ResNet-50 + GloRe (0, 3)", 33.0, 5.2, "seresnet50"),),
    "resnet200": (PaperFigure(_G2, "ResNet-200", 64.6, 15.0),),
    "resnet200_glore_0_3": (PaperFigure(_G2, "ResNet-200 + GloRe (0, 3)", 69.7, 16.2, "resnet200"),),
    "resnet200_glore_2_3": (PaperFigure(_G2, "ResNet-200 + GloRe (2, 3)", 70.6, 16.9, "resnet200"),),
    "resnext101_32x4d": (PaperFigure(_G2, "ResNeXt-101 (32x4d)", 44.3, 8.0),),
    "resnext101_32x4d_glore_2_3": (
        PaperFigure(_G2, "ResNeXt-101 (32x4d) + GloRe (2, 3)", 50.3, 9.9, "resnext101_32x4d"),),
    "dpn98": (PaperFigure(_G2, "DPN-98", 61.7, 11.7),),
    "dpn98_glore_2_3": (PaperFigure(_G2, "DPN-98 + GloRe (2, 3)", 67.7, 13.6, "dpn98"),),
    "dpn131": (PaperFigure(_G2, "DPN-131", 79.5, 16.0),),
    "dpn131_glore_2_3": (PaperFigure(_G2, "DPN-131 + GloRe (2, 3)", 85.5, 17.9, "dpn131"),),
    # GCNet paper Table 8a (ResNet-50 on ImageNet)
    "resnet50_nl": (PaperFigure(_G8, "+1 NL", 27.66, 4.11, "resnet50"),),
    "resnet50_snl": (PaperFigure(_G8, "+1 SNL", 26.61, 3.86, "resnet50"),),
    "resnet50_gc": (PaperFigure(_G8, "+1 GC", 25.69, 3.86, "resnet50"),),
    "resnet50_gc_all": (PaperFigure(_G8, "+all GC (r16)", 28.08, 3.87, "resnet50"),),
}


def baseline_figure(figure: PaperFigure) -> PaperFigure | None:
    """The same paper's row for ``figure``'s baseline, or ``None``."""
    if figure.baseline is None:
        return None
    return next((f for f in FIGURES.get(figure.baseline, ()) if f.source == figure.source), None)

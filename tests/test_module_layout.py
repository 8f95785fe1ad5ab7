"""The split modules keep every public name importable from where it was, as the same object."""

import subprocess
import sys

from glore import demo
from glore.engine import atomic_checkpoint, checkpoint as engine_checkpoint
from glore.models import (distant_clips, segmentation, segmentation_backbone, segmentation_heads, slow_only,
                          tiny_segnet, video, video_inflation, video_resnet)


def test_old_paths_name_the_new_objects():
    for old, new, names in [
        (video, video_resnet, ["VideoResNet", "PreActBottleneck", "DEFAULT_UNITS", "RESNET101_UNITS"]),
        (video, video_inflation, ["InflationReport", "inflate_state_dict", "inflate_model"]),
        (video, distant_clips, ["DistantClipsNet", "distant_clips_net"]),
        (slow_only, video_inflation, ["InflationReport"]),
        (segmentation, segmentation_heads, ["ContextHead", "FCNHead", "HEADS", "OWN_HEADS", "DEFAULT_CONCAT_INPUT"]),
        (segmentation, segmentation_backbone, ["create_backbone", "apply_multigrid", "feature_channels",
                                               "LOCAL_BACKBONES"]),
        (segmentation, tiny_segnet, ["TinySegNet"]),
        (engine_checkpoint, atomic_checkpoint, ["AtomicCheckpointIO", "CheckpointError", "save_atomic"]),
    ]:
        for name in names:
            assert getattr(old, name) is getattr(new, name), (old.__name__, name)


def test_the_demo_command_line_loads_no_engine():
    # `glore --help` builds every subcommand's parser, the demo's included: the engine stays unloaded
    code = ("import sys, glore.cli; glore.cli.build_parser(); "
            "assert not any(m.startswith(('glore.engine.runner', 'glore.demo.runs')) for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert callable(demo.run) and demo.main is demo.cli.main

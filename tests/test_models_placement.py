"""The one placement vocabulary (glore.models.placement): the spec and its parser, the name normaliser,
the block-defaults table, and the earlier spellings that still work with a FutureWarning."""

import dataclasses
import glob
import os
import warnings

import pytest
import torch

from glore.engine.config import load_config
from glore.errors import GloreError
from glore.models import create_segmenter, distant_digits_net, insert_blocks
from glore.models import placement as P
from glore.models.distant_clips import distant_clips_net
from glore.models.segmentation_heads import ContextHead
from glore.models.small import SMALL_MODELS
from glore.models.video import VideoResNet, create_video_model
from glore.nn import BLOCKS

ROOT = os.path.join(os.path.dirname(__file__), "..")
DEPTHS = {"res2": 3, "res3": 4, "res4": 6, "res5": 3}
TINY_VIDEO = dict(width_mult=0.125, num_classes=3)
TINY_SEG = dict(backbone="tiny_segnet", multigrid=None, num_classes=3, channels=16, aux=False)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- the spec and its parser

@pytest.mark.parametrize("units, expected", [
    ((0, 3), {"res4": (1, 3, 5)}),
    ((2, 3), {"res3": (1, 3), "res4": (1, 3, 5)}),
    ({"res4": 3}, {"res4": (1, 3, 5)}),
    ({"res4": [5]}, {"res4": (5,)}),
    ({"res4": [5, 2]}, {"res4": (2, 5)}),
    ({"res4": 6}, {"res4": (1, 2, 3, 4, 5, 6)}),     # more than every other block: spread from block 1
    ("all", {"res3": (1, 2, 3, 4), "res4": (1, 2, 3, 4, 5, 6), "res5": (1, 2, 3)}),
])
def test_every_form_users_write_resolves_to_1_based_indices(units, expected):
    spec = P.parse_placement("GloRe", units)
    assert spec.block == "glore" and spec.where(DEPTHS) == expected == P.resolve_units(units, DEPTHS)
    assert P.parse_placement(**spec.as_kwargs()) == spec        # the keywords give the same spec back


def test_the_spec_is_frozen_and_knows_the_default_slot():
    spec = P.parse_placement("gc", "all", block_kwargs={"ratio": 0.25})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.block = "nl"
    with pytest.raises(TypeError):
        spec.block_kwargs["ratio"] = 1.0
    assert spec.slot == "after_1x1" and P.parse_placement("gc", "all", "after_add").slot == "after_add"
    assert P.parse_placement("glore", (0, 1)).slot == "after_add"
    assert P.parse_placement(None) is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(block="glore"), r"block='glore' needs units"),
    (dict(units=(0, 3)), "need a block"),
    (dict(block="glore", units=(0, 3), position="inside"), r"position must be one of \['after_add', 'after_1x1'\]"),
    (dict(block="glore", units=3), r"units must be \(n, m\), a dict"),
    (dict(block="glore", units="every"), r"units must be \(n, m\), a dict"),
    (dict(block="glore", units={"res4": [2, 2]}), "must be distinct"),
    (dict(block="glore", units={"res4": -1}), "non-negative integer"),
    (dict(block="glore", units=(0, 3), block_kwargs={"ratio": 2}), r"does not take the option\(s\) \['ratio'\]"),
    (dict(block="transformer", units=(0, 3)), r"unknown block 'transformer'; expected one of \['cbam', 'gc'"),
])
def test_parse_errors_are_one_line_glore_errors(kwargs, match):
    with pytest.raises(GloreError, match=match) as info:
        P.parse_placement(**kwargs)
    assert "\n" not in str(info.value)


def test_stage_and_index_errors_name_the_backbone():
    with pytest.raises(GloreError, match=r"unknown stage 'layer3'; this backbone has stages"):
        P.resolve_units({"layer3": [1]}, DEPTHS)
    with pytest.raises(GloreError, match=r"res5 has 3 blocks \(indices 1..3\), got indices \[4\]"):
        P.resolve_units({"res5": [4]}, DEPTHS)


@pytest.mark.parametrize("name, expected", [(None, None), ("none", None), ("", None), ("None", None),
                                            ("GC", "gc"), ("glore", "glore")])
def test_one_name_normaliser(name, expected):
    assert P.block_name(name) == expected


# ----------------------------------------------------------------------------- the defaults table

def test_the_table_has_every_block_and_only_blocks():
    assert set(P.BLOCK_TABLE) == set(BLOCKS)
    assert all(d.position in P.POSITIONS for d in P.BLOCK_TABLE.values())


def test_block_options_merge_start_host_settings_then_given():
    assert P.block_options("glore", 1024) == {"mid": 256}                       # C / 4
    assert P.block_options("glore", 32, settings=("demo",)) == {"mid": 32}       # the demo nets: mid = C
    assert P.block_options("glore", 1024, {"mid": 64}) == {"mid": 64}
    assert P.block_options("se", 64) == {"zero_init": True}                     # starts as the identity
    assert P.block_options("gc", 96, settings=("timm",)) == {"ratio": 1 / 6}     # at least 16 hidden channels
    assert P.block_options("gc", 2048, settings=("video",)) == {"ratio": 1 / 4}
    assert P.block_options("nl", 256, settings=("demo", "video")) == {"sub_sample": True}
    assert P.block_options("nl", 256, settings=("segmentation",)) == {}


def test_every_builder_reads_the_same_defaults():
    video = create_video_model("resnet50_3d", block="gc", **TINY_VIDEO)
    unit = video.layer3.units["0"]
    assert unit.transform[0].out_channels == unit.channels // 4                 # the video setting's ratio 1/4
    head = create_segmenter(head="gc", **TINY_SEG).head.context[0]
    assert head.transform[0].out_channels == 16 // 4                            # the segmentation setting's
    clips = distant_clips_net(block="nl", width=8)
    assert clips.block_kwargs == {"sub_sample": True}
    assert distant_digits_net(block="gc", width=8).block_kwargs == {"ratio": 1 / 4}
    assert create_video_model("resnet50_3d", block="se", **TINY_VIDEO).layer3.units["0"].gate_scale == 2.0


# ----------------------------------------------------------------------------- earlier spellings

def _warns(match):
    return pytest.warns(FutureWarning, match=match)


def test_segmenter_head_count_and_options_in_the_earlier_spelling():
    new = create_segmenter(head="glore", head_depth=2, head_kwargs={"mid": 4}, **TINY_SEG)
    with _warns(r"units=2 \(the head's number of blocks\) is deprecated .*; write head_depth=2"):
        with _warns(r"block_kwargs=\{'mid': 4\} for the head is deprecated .*; write head_kwargs=\{'mid': 4\}"):
            old = create_segmenter(head="glore", units=2, block_kwargs={"mid": 4}, **TINY_SEG)
    assert len(old.head.context) == len(new.head.context) == 2
    assert old.head.context[0].num_nodes == new.head.context[0].num_nodes == 4
    assert n_params(old) == n_params(new)
    with _warns(r"ContextHead\(units=3\) is deprecated .*; write ContextHead\(depth=3\)"):
        assert len(ContextHead(16, 3, block="glore", units=3, channels=16).context) == 3


def test_segmenter_backbone_blocks_in_the_earlier_spelling(monkeypatch):
    seen = []
    monkeypatch.setattr("glore.models.segmentation.create_backbone",
                        lambda *args, blocks=None, **kwargs: seen.append(blocks) or torch.nn.Identity())
    monkeypatch.setattr("glore.models.segmentation.feature_channels", lambda net: (8, 16))
    create_segmenter("resnet18", block="gc", units="all", block_kwargs={"ratio": 0.25}, num_classes=3, channels=16)
    with _warns(r"backbone_blocks=\{.*\} is deprecated .*; write block='gc', units='all', block_kwargs="):
        create_segmenter("resnet18", backbone_blocks=dict(block="gc", units="all", block_kwargs={"ratio": 0.25}),
                         num_classes=3, channels=16)
    assert seen[0] == seen[1] == dict(block="gc", units="all", position=None, block_kwargs={"ratio": 0.25})
    with pytest.raises(GloreError, match=r"backbone_blocks is the earlier spelling of block, units, position"):
        create_segmenter("resnet18", block="nl", units=(0, 1), backbone_blocks=dict(block="gc", units="all"))


def test_video_positions_in_the_earlier_spelling():
    new = VideoResNet((3, 4, 6, 3), units={"res3": [2], "res4": [1, 6]}, **TINY_VIDEO)
    with _warns(r"positions=\{'layer2': \(1,\), 'layer3': \(0, 5\)\} \(0-based .*\) is deprecated .*; "
                r"write units=\{'res3': \(2,\), 'res4': \(1, 6\)\} \(1-based"):
        old = VideoResNet((3, 4, 6, 3), positions={"layer2": (1,), "layer3": (0, 5)}, **TINY_VIDEO)
    assert sorted(old.layer2.units) == sorted(new.layer2.units) == ["1"]
    assert sorted(old.layer3.units) == sorted(new.layer3.units) == ["0", "5"]
    with _warns("positions="):
        authors = create_video_model("resnet101_3d", positions={"layer2": (0, 2), "layer3": (5, 11, 17)},
                                     **TINY_VIDEO)
    assert sorted(authors.layer3.units, key=int) == ["5", "11", "17"]
    from glore.models import video, video_official
    with _warns(r"DEFAULT_POSITIONS .* write DEFAULT_UNITS"):
        assert video.DEFAULT_POSITIONS == {"layer2": (0, 2), "layer3": (0, 2, 4)}
    with _warns(r"RESNET101_POSITIONS .* write RESNET101_UNITS"):
        assert video.RESNET101_POSITIONS == {"layer2": (0, 2), "layer3": (5, 11, 17)}
    with _warns(r"official_unit_positions .* write official_units"):
        assert video_official.official_unit_positions({"conv4.B06_extra.x": 0, "conv1.conv.weight": 0}) == \
            {"layer3": (5,)}
    with pytest.raises(GloreError, match="give units= or the earlier positions=, not both"):
        VideoResNet((3, 4, 6, 3), units=(1, 1), positions={"layer2": (0,)}, **TINY_VIDEO)


def test_block_options_as_keywords_in_the_earlier_spelling():
    with _warns(r"distant_digits_net\(\.\.\., mid=\) is deprecated .*; write block_kwargs=\{'mid': 4\}"):
        old = distant_digits_net(block="glore", width=8, mid=4)
    assert old.block_kwargs == distant_digits_net(block="glore", width=8, block_kwargs={"mid": 4}).block_kwargs
    with _warns(r"distant_clips_net\(\.\.\., ratio=\) is deprecated"):
        distant_clips_net(block="gc", width=8, ratio=0.5)
    import timm
    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    with _warns(r"insert_blocks\(\.\.\., ratio=\) is deprecated .*; write block_kwargs=\{'ratio': 0.5\}"):
        insert_blocks(model, block="gc", units={"res4": [1]}, ratio=0.5)
    assert model.layer3[0].after_1x1.transform[0].out_channels == 128


def test_module_names_of_the_earlier_tables_warn():
    from glore.models import insert, segmentation_heads
    with _warns(r"DEFAULT_POSITION is deprecated .*BLOCK_TABLE\[block\].position"):
        assert insert.DEFAULT_POSITION["gc"] == "after_1x1"
    with _warns(r"INSERT_DEFAULTS is deprecated .*BLOCK_TABLE\[block\].start"):
        assert insert.INSERT_DEFAULTS == {"se": {"zero_init": True}, "cbam": {"zero_init": True}}
    with _warns(r"DEFAULT_BLOCK_KWARGS is deprecated .*block_options"):
        assert segmentation_heads.DEFAULT_BLOCK_KWARGS["gc"] == {"ratio": 1 / 4}


@pytest.mark.parametrize("task, model, old, new", [
    ("segmentation", {"head": "glore", "units": 2}, "model.units=2", {"head": "glore", "head_depth": 2}),
    ("segmentation", {"head": "glore", "block_kwargs": {"mid": 8}}, "model.block_kwargs=",
     {"head": "glore", "head_kwargs": {"mid": 8}}),
    ("segmentation", {"backbone_blocks": {"block": "gc", "units": "all"}}, "model.backbone_blocks=",
     {"block": "gc", "units": "all"}),
    ("video", {"name": "resnet50_3d", "positions": {"layer2": [0]}}, "model.positions=",
     {"name": "resnet50_3d", "units": {"res3": (1,)}}),
])
def test_config_keys_in_the_earlier_spelling(tmp_path, task, model, old, new):
    import yaml
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"task": task, "model": model}))
    with _warns(f"{old}.* is deprecated and goes in the next release; write model."):
        cfg = load_config(path)
    assert {k: cfg["model"][k] for k in new} == new
    assert not (set(model) - set(new)) & set(cfg["model"])        # the old key is gone


def _shipped_configs():
    return sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)
                  if os.sep + "studies" + os.sep not in p)


def test_no_shipped_config_warns():
    small = [name for name in SMALL_MODELS] + ["glore.models.video:distant_clips_net"]
    built = 0
    for path in _shipped_configs():
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            cfg = load_config(path)
            model = cfg["model"]
            if cfg["task"] == "classification" and model.get("name") in small:   # demo networks: cheap to build
                from glore.engine.classification import build_model
                build_model(model)
                built += 1
            elif cfg["task"] == "segmentation" and model.get("backbone") == "tiny_segnet":
                from glore.engine.segmentation import build_segmenter
                build_segmenter(model)
                built += 1
    assert built >= 10

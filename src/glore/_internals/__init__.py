"""Everything glore reads of Lightning, timm and torchvision that they do not export publicly, in one
place: :mod:`.lightning_state` (trainer and loop state), :mod:`.timm_blocks` (timm's EfficientNet /
MobileNetV3 block classes) and :mod:`.torchvision_detection` (the matcher and box coder of torchvision's
detection heads).

``tests/test_internals.py`` and ``tests/test_engine_lightning_internals.py`` exercise each name against
the installed libraries, so an upgrade that moves one fails there, naming it;
``tests/test_no_foreign_privates.py`` fails when any other module of glore reaches a private name.
"""

"""Keras 3 ports of the paper's PyTorch backbones: one module per architecture family.

Each module holds a family's Keras model, the converter that fills it from the PyTorch
`state_dict` it mirrors, and the registration of both (the backbone spec with
`tfbackbones.backbones.registry`, the converter with `tfbackbones.convert.registry`).
Why one file: the converter depends on every layer name and layout choice of the model,
so a change to one is reviewed next to the other (timm keeps `checkpoint_filter_fn`
beside each model for the same reason). `tfbackbones.convert` keeps only the machinery
every converter shares: reading checkpoints, assigning tensors by name and checking that
none is left over.

Importing a family module registers it without importing TensorFlow or Keras, so that
listing backbones stays fast; Keras is imported when a model is first built.
`tfbackbones.backbones` imports every family.
"""

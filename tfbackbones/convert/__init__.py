"""Converting PyTorch (torchvision / official WaveMix) state_dicts to Keras 3 weights.

`python -m tfbackbones.convert --arch=NAME --src=model.pth --dst=model.weights.h5`.
Each converter sits beside the model it fills, in `tfbackbones.backbones.ports` (and
`efficientnet_lite`), and registers itself there; this package holds only what they all
share: reading checkpoints (`common`, `pth_numpy`), the name -> converter `registry`,
and the command line.
"""

"""Converting PyTorch (torchvision / official WaveMix) state_dicts to Keras 3 weights.

`python -m tfbackbones.convert --arch=NAME --src=model.pth --dst=model.weights.h5`.
Each architecture family registers a converter in its own module; `registry` maps the
architecture name to it.
"""

"""`tiny_imagenet` dataset: Tiny ImageNet 200 (train 100,000 / val 10,000, 64x64)."""

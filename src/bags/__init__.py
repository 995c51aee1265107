"""Balanced Group Softmax for torchvision Faster R-CNN."""

__version__ = "0.1.0"

"""Architectures, augmentation, fitting, the model card, Grad-CAM and serving formats."""

"""Random flips, rotations, zooms and shifts of whole batches, fused into one resampling.

Keras' RandomFlip, RandomRotation, RandomZoom and RandomTranslation resample a batch once
each; here they become one affine transform per image, applied by one
`keras.ops.image.affine_transform` call, so augmentation costs a fraction of the training step
instead of half of it. The randomness comes from a seed per batch (stateless ops), so the
same seed gives the same augmented batches whatever the number of threads that prepare them.
"""

import math
from dataclasses import dataclass

import keras
import tensorflow as tf


@dataclass(frozen=True)
class Augmentation:
    flip: bool  # random horizontal flips
    rotation: float  # rotation range, as a fraction of a full turn (Keras' RandomRotation)
    zoom: float  # zoom range, as a fraction of the size (Keras' RandomZoom)
    translation: float = 0.0  # shift range, as a fraction of the size (Keras' RandomTranslation)
    interpolation: str = "bilinear"  # bilinear | nearest: how moved pixels are resampled

    @property
    def active(self) -> bool:
        return self.flip or self.moves

    @property
    def moves(self) -> bool:
        """Whether pixels are resampled (rotation, zoom or shifts), not only mirrored."""
        return self.rotation > 0 or self.zoom > 0 or self.translation > 0


def affine_transforms(mirror, angle, scale, shift_x, shift_y, size: int) -> tf.Tensor:
    """(n, 8) projective transforms that map each output pixel to the input pixel it shows:
    mirror (-1 flips, 1 does not), rotate by `angle` (radians) and scale (above 1 shows more
    of the input, zooming out, as in Keras), all about the image centre, then shift the
    content by (shift_x, shift_y) pixels."""
    values = (mirror, angle, scale, shift_x, shift_y)
    mirror, angle, scale, shift_x, shift_y = (tf.cast(value, tf.float32) for value in values)
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    # input = centre + scale * R(angle) @ diag(mirror, 1) @ (output - shift - centre)
    a0, a1, b0, b1 = cos * mirror, -sin, sin * mirror, cos
    centre = (size - 1) / 2
    a2 = centre - a0 * (centre + shift_x) - a1 * (centre + shift_y)
    b2 = centre - b0 * (centre + shift_x) - b1 * (centre + shift_y)
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def random_flips(count, seeds: tf.Tensor) -> tf.Tensor:
    """(count,) booleans, each image's flip: the first of the seeds random_transforms splits."""
    return tf.random.stateless_uniform((count,), seeds[0]) < 0.5


def random_transforms(count, size: int, augmentation: Augmentation, seed) -> tf.Tensor:
    """One random flip, rotation and zoom per image, drawn from `seed` (shape (2,))."""
    seeds = tf.random.experimental.stateless_split(seed, 5)
    flip = random_flips(count, seeds)
    mirror = tf.where(flip, -1.0, 1.0) if augmentation.flip else tf.ones((count,))
    turn = augmentation.rotation * 2 * math.pi
    angle = tf.random.stateless_uniform((count,), seeds[1], -turn, turn)
    low, high = 1 - augmentation.zoom, 1 + augmentation.zoom
    scale = tf.random.stateless_uniform((count,), seeds[2], low, high)
    reach = augmentation.translation * size
    shift_x = tf.random.stateless_uniform((count,), seeds[3], -reach, reach)
    shift_y = tf.random.stateless_uniform((count,), seeds[4], -reach, reach)
    return affine_transforms(mirror, angle, scale, shift_x, shift_y, size)


def transform(images: tf.Tensor, transforms: tf.Tensor, interpolation="bilinear") -> tf.Tensor:
    """Resample images by projective transforms; borders filled by reflection, which suits
    photos and silhouettes alike."""
    return keras.ops.image.affine_transform(
        images, transforms, interpolation=interpolation, fill_mode="reflect"
    )


def augment(images: tf.Tensor, augmentation: Augmentation, seed) -> tf.Tensor:
    """uint8 (or float) images (n, size, size, c) -> float32 augmented images in [0, 255].

    Resampled as floats: on uint8 the op truncates each interpolated value, which shifts
    every augmented image 0.5 levels darker than the unaugmented val and test images.
    Flips alone are the same images as their affine transform gives, but reversed in memory:
    the resampling was an eighth of the CPU time of a training step (docs/benchmarks.md)."""
    images = tf.cast(images, tf.float32)
    if not augmentation.moves:
        flip = random_flips(tf.shape(images)[0], tf.random.experimental.stateless_split(seed, 5))
        flip = tf.logical_and(flip, augmentation.flip)
        return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    transforms = random_transforms(tf.shape(images)[0], images.shape[1], augmentation, seed)
    return transform(images, transforms, augmentation.interpolation)

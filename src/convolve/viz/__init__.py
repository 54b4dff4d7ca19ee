"""Seeing inside a CNN: filters, feature maps, receptive fields, saliency, Grad-CAM, training curves, confusion
matrices and classic image filters as pictures, and animated convolutions (`animate`, GIF via Pillow).

Numbers and drawings are separate: `feature_maps`, `receptive_field`, `empirical_receptive_field`, `saliency`,
`grad_cam`, `apply_filter` and `load_history` return NumPy arrays and need only NumPy; every `plot_*` function
needs the optional matplotlib (`pip install 'convolve[viz]'`), draws headless (Agg canvas, no pyplot), writes a
PNG or SVG (by the extension) when given `path`, and returns the matplotlib Figure (notebooks display it).
"""

from convolve.viz._layers import conv_layer_names
from convolve.viz.animate import Step, Sweep, animate, sweep
from convolve.viz.attribution import bilinear_resize, grad_cam, predict_class, saliency
from convolve.viz.confusion import plot_confusion_matrix
from convolve.viz.curves import load_history, plot_training_curves
from convolve.viz.explain import plot_grad_cam, plot_saliency
from convolve.viz.features import feature_maps, plot_feature_maps
from convolve.viz.filters import filter_tiles, plot_filters
from convolve.viz.image_filters import (
    LAPLACIAN,
    SHARPEN,
    SOBEL_X,
    SOBEL_Y,
    apply_filter,
    box_kernel,
    demo_image,
    gaussian_kernel,
    plot_filters_demo,
    sobel_magnitude,
)
from convolve.viz.receptive import FieldBox, empirical_receptive_field, plot_receptive_field, receptive_field

__all__ = [
    "LAPLACIAN",
    "SHARPEN",
    "SOBEL_X",
    "SOBEL_Y",
    "FieldBox",
    "Step",
    "Sweep",
    "animate",
    "apply_filter",
    "bilinear_resize",
    "box_kernel",
    "conv_layer_names",
    "demo_image",
    "empirical_receptive_field",
    "feature_maps",
    "filter_tiles",
    "gaussian_kernel",
    "grad_cam",
    "load_history",
    "plot_confusion_matrix",
    "plot_feature_maps",
    "plot_filters",
    "plot_filters_demo",
    "plot_grad_cam",
    "plot_receptive_field",
    "plot_saliency",
    "plot_training_curves",
    "predict_class",
    "receptive_field",
    "saliency",
    "sobel_magnitude",
    "sweep",
]

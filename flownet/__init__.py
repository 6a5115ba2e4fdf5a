"""flownet: facial optical flow (SRFlowNet, facial regularizers, classical baselines, optical strain,
flow metrics and ``.flo`` I/O). A standalone library: it never imports ``icegan``.

Conventions: flow tensors are (B, 2, H, W) in pixels, channel 0 = horizontal u, channel 1 = vertical v;
flow(x) maps pixel x of the first image to x + flow(x) in the second.
"""
__version__ = "0.1.0"

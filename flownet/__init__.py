"""flownet: facial optical flow (SRFlowNet, facial regularizers, classical baselines, optical strain,
flow metrics and ``.flo`` I/O). A standalone library: it never imports ``icegan``.

Conventions: flow tensors are (B, 2, H, W) in pixels, channel 0 = horizontal u, channel 1 = vertical v;
flow(x) maps pixel x of the first image to x + flow(x) in the second. Images given to estimators are
(B, 1 or 3, H, W) float tensors in [0, 1] (grey or RGB).

Entry point::

    est = flownet.get_estimator("srflownet")          # shipped weights, CPU
    flow = est.estimate(img1, img2)                    # (B, 2, H, W), pixels
    est.model                                          # the differentiable nn.Module (SRFlowNet)
"""
__version__ = "0.1.0"

__all__ = ["ESTIMATORS", "SRFlowNetEstimator", "get_estimator", "load_srflownet", "default_weights_path"]


def __getattr__(name: str):
    """The entry points above, imported on first use (PEP 562): ``flownet.registry`` pulls in the network code and
    torchvision (about 1.6 s), which ``import flownet.devices`` or ``flownet.flow_io`` alone should not pay."""
    if name in __all__:
        from . import registry
        return getattr(registry, name)
    raise AttributeError(f"module 'flownet' has no attribute {name!r}")

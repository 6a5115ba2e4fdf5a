"""The small SRFlowNet widths the flow tests build networks with (a few thousand weights: fast on a CPU)."""

#: SRFlowNetConfig / DecFlowConfig keyword arguments of the tests' tiny network (3 updates)
TINY_SRFLOWNET = dict(feature_layers=(16, 16, 16, 24, 32), context_layers=(16, 16, 16, 24, 48), hidden=24,
                      corr_levels=2, corr_radius=2, motion_channels=34, super_kernel=7, flow_head_hidden=32,
                      mask_hidden=32, iters=3)

#: SRFlowNetConfig keyword arguments of the even smaller network the main-job tests compute flow features with
MAIN_JOB_SRFLOWNET = dict(feature_layers=(8, 8, 16, 16, 16), context_layers=(8, 8, 16, 16, 32), hidden=16,
                          corr_levels=2, motion_channels=16, flow_head_hidden=16, mask_hidden=16)


def save_main_job_weights(path, iters: int = 2) -> str:
    """Randomly initialised (seed 0) :data:`MAIN_JOB_SRFLOWNET` weights with ``iters`` updates saved to ``path``
    (for ``flow.weights=``); returns the path as a string."""
    import torch

    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.registry import save_srflownet
    torch.manual_seed(0)
    return str(save_srflownet(SRFlowNet(SRFlowNetConfig(**MAIN_JOB_SRFLOWNET, iters=iters)), path))

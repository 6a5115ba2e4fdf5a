"""The small SRFlowNet widths the flow tests build networks with (a few thousand weights: fast on a CPU)."""

#: SRFlowNetConfig / DecFlowConfig keyword arguments of the tests' tiny network (3 updates)
TINY_SRFLOWNET = dict(feature_layers=(16, 16, 16, 24, 32), context_layers=(16, 16, 16, 24, 48), hidden=24,
                      corr_levels=2, corr_radius=2, motion_channels=34, super_kernel=7, flow_head_hidden=32,
                      mask_hidden=32, iters=3)

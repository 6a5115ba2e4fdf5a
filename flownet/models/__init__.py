"""Flow networks: :mod:`.srflownet` (SRFlowNet, RAFT family with super kernels), :mod:`.liteflownet2`
(LiteFlowNet2, pyramid with cascaded flow inference and f-lcon), :mod:`.backbones` (torchvision RAFT and
ptlflow adapters). All take images (B, 1|3, H, W) in [0, 1] and give flow (B, 2, H, W) in pixels; build
them by name with :func:`flownet.registry.build_backbone` / :func:`flownet.registry.get_estimator`."""

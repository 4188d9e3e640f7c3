# SeqConv ablation (Fig. 3c): decoder head -> SeqConv (4 x [x2 nearest, Conv3x3, GN, GELU] + Conv3x3).
# Reference: ViT-VAE-T w/ RoPE (= pe_rope.py): conv patch embed (k = s = 16) + 1x1 / PixelShuffle(16) / Conv3x3 head.
_base_ = [
    '../_base_/models/vit-vae-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_ablation_5e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
model = dict(
    arch=dict(pe_cfg=dict(_delete_=True, type='RoPE2D', theta=10000.0)),
    decoder=dict(head_cfg=dict(_delete_=True, type='SeqConvUpHead')))

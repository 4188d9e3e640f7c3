# Stage ablation (Fig. 3c): multi-stage -- TransVAE-T layout (2 ResBlock + 3 Transformer stages), plain ViT block.
# "ViT w RoPE w Multi-Stage": ViT block (no Q/K norm, point-wise FFN x4), RoPE, no DC path (ConvPixelUnshuffle down,
# interpolate + conv up, no latent shortcut).
_base_ = [
    '../_base_/models/transvae-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_ablation_5e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
model = dict(
    arch=dict(
        block_cfg=dict(
            _delete_=True,
            type='ViTBlock',
            attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=None),
            ffn_cfg=dict(type='PointwiseFFN', ffn_ratio=4.0),
            norm_cfg=dict(type='LN')),
        pe_cfg=dict(_delete_=True, type='RoPE2D', theta=10000.0),
        latent_shortcut=False),
    encoder=dict(down_cfg=dict(_delete_=True, type='ConvPixelUnshuffleDown')),
    decoder=dict(up_cfg=dict(_delete_=True, type='InterpConvUp')))

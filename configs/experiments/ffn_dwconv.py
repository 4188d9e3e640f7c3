# FFN ablation (Fig. 4a, multi-stage): Conv-FFN with a depthwise 3x3 conv in the hidden space, ratio 4.
# Reference: stage_multi.py (multi-stage, ViT block with RoPE, no Q/K norm, no DC path).
_base_ = [
    '../_base_/models/transvae-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_ablation_5e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
model = dict(
    arch=dict(
        block_cfg=dict(
            _delete_=True,
            type='TransVAEBlock',
            attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=None),
            ffn_cfg=dict(type='DWConvFFN', ffn_ratio=4.0),
            norm_cfg=dict(type='LN')),
        pe_cfg=dict(_delete_=True, type='RoPE2D', theta=10000.0),
        latent_shortcut=False),
    encoder=dict(down_cfg=dict(_delete_=True, type='ConvPixelUnshuffleDown')),
    decoder=dict(up_cfg=dict(_delete_=True, type='InterpConvUp')))

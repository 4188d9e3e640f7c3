# Minor ablation (Fig. 4c): + Q/K RMSNorm + DC path = the final TransVAE-T.
# Fig. 4(c) runs 10 epochs of the §3.1 A setting (schedule_10e). Reference: minor_baseline.py.
_base_ = [
    '../_base_/models/transvae-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_10e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
model = dict(
    arch=dict(
        block_cfg=dict(
            _delete_=True,
            type='TransVAEBlock',
            attn_cfg=dict(type='MultiHeadSelfAttention', qk_norm_cfg=dict(type='RMSNorm')),
            ffn_cfg=dict(type='FullConvFFN', ffn_ratio=1.0),
            norm_cfg=dict(type='LN')),
        pe_cfg=dict(_delete_=True, type='RoPE2D', theta=10000.0),
        latent_shortcut=True),
    encoder=dict(down_cfg=dict(_delete_=True, type='DCDownsample')),
    decoder=dict(up_cfg=dict(_delete_=True, type='DCUpsample')))

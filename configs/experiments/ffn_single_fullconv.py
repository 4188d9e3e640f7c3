# FFN ablation (Fig. 4b, single stage): Conv-FFN with a dense 3x3 conv, ratio 1.
# Reference: stage_single.py (ViT-VAE-T w/ RoPE + Dual SeqConv).
_base_ = [
    '../_base_/models/vit-vae-t_f16d32.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/schedule_ablation_5e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=32)  # 8xb32: global batch 256 on 8 GPUs (PAPER.md §3.1)
model = dict(
    arch=dict(
        pe_cfg=dict(_delete_=True, type='RoPE2D', theta=10000.0),
        block_cfg=dict(ffn_cfg=dict(_delete_=True, type='FullConvFFN', ffn_ratio=1.0))),
    encoder=dict(patch_embed_cfg=dict(_delete_=True, type='SeqConvPatchEmbed')),
    decoder=dict(head_cfg=dict(_delete_=True, type='SeqConvUpHead')))

# SeqConv ablation (Fig. 3c): SeqConv in the decoder too (Dual SeqConv). Reference: patch_embed_seqconv_enc.py.
_base_ = ['./patch_embed_seqconv_enc.py']
# At least 4 channels per group in every stage of the head (its last stage has D/16 channels at full resolution;
# one channel per group would be InstanceNorm there). Set here, not only as the class default, so that a run's
# config fingerprint records it.
model = dict(decoder=dict(head_cfg=dict(_delete_=True, type='SeqConvUpHead',
                                        norm_cfg=dict(type='GN', min_group_channels=4))))

# `--preset cpu` (embed dim 128, a quarter of ViT-VAE-T's): GroupNorm(8) keeps the paper's channels per group in
# the first stages of the SeqConvUpHead ramp; the 4-channel floor applies to its 16- / 8-channel stages.
presets = dict(cpu=dict(model=dict(decoder=dict(head_cfg=dict(
    norm_cfg=dict(type='GN', num_groups=8, min_group_channels=4))))))

# VA-VAE f16d32 (LightningDiT's tokenizer, hustvl/LightningDiT tokenizer/configs/vavae_f16d32.yaml): the CNN-VAE-T
# f16d32 architecture (LDM, ch 128, mults [1, 1, 2, 2, 4], attention at 16x16 for 256² inputs) plus LDM's quant_conv /
# post_quant_conv. Weights from an original VA-VAE .pt: tools/model_converters/ldm_to_transvae.py.
_base_ = ['./cnn-vae-t_f16d32.py']
model = dict(
    encoder=dict(quant_conv=True),
    decoder=dict(post_quant_conv=True))

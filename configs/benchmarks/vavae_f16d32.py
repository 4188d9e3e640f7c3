# VA-VAE f16d32, native CNN-VAE. Weights: ldm_to_transvae.py VAVAE_PT OUT; CKPT = OUT/model.safetensors
#   python tools/model_converters/ldm_to_transvae.py vavae-imagenet256-f16d32-dinov2.pt checkpoints/vavae
#   python tools/test.py configs/benchmarks/vavae_f16d32.py checkpoints/vavae/model.safetensors
# The original VA-VAE checkpoint (LDM keys; loss.* / foundation_model.* training keys are dropped and counted) needs
# no yaml: the converter reads the architecture off the weights (or pass --config tokenizer/configs/vavae_f16d32.yaml).
# Latent statistics are not part of VA-VAE (LightningDiT computes them from the extracted latents).
_base_ = ['../_base_/models/vavae_f16d32.py', './_base_/pretrained_eval.py']

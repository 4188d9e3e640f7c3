# Minor ablation (Fig. 4c): multi-stage + FullConv FFN (= ffn_fullconv.py), neither Q/K RMSNorm nor the DC path,
# trained 10 epochs instead of 5 (Fig. 4c extends the §3.1 A setting). The reference of the minor_* family.
_base_ = ['./ffn_fullconv.py']
train_cfg = dict(max_iters=10 * 5005)  # 10 ImageNet epochs at global batch 256

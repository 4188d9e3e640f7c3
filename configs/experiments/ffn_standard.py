# FFN ablation (Fig. 4a, multi-stage): the point-wise MLP (ratio 4) -- the reference point itself (= stage_multi.py).
_base_ = ['./stage_multi.py']

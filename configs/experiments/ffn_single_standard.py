# FFN ablation (Fig. 4b, single stage): the point-wise MLP (ratio 4) -- the reference point itself (= stage_single.py).
_base_ = ['./stage_single.py']

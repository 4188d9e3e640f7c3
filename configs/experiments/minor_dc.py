# Minor ablation (Fig. 4c): + the DC path (DCDownsample / DCUpsample + latent shortcuts). Reference: minor_baseline.py.
_base_ = ['./minor_baseline.py']
model = dict(
    arch=dict(latent_shortcut=True),
    encoder=dict(down_cfg=dict(_delete_=True, type='DCDownsample')),
    decoder=dict(up_cfg=dict(_delete_=True, type='DCUpsample')))

# The main CPU job: the micro TransVAE f8d16 (1.5M parameters) trained for a fixed number of iterations (about 10
# minutes on a 2-core CPU) on 64² crops of the bundled photos, evaluated on the held-out photos (256² center crops).
# `bash scripts/run_demo.sh` runs it. The recipe (data, schedule, hooks) is _base_/recipes/cpu_photos_1xb16-1250it.py.
_base_ = ['../_base_/models/transvae-micro_f8d16.py', '../_base_/recipes/cpu_photos_1xb16-1250it.py']

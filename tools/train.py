"""Train a transvae model: ``python tools/train.py CONFIG [--preset cpu] [--work-dir DIR] [--resume [auto|PATH]] ...``.

``python tools/train.py -h`` lists the flags; the command line is :mod:`transvae.apis.train_cli`.
"""
from transvae.apis.train_cli import main

if __name__ == '__main__':
    main()

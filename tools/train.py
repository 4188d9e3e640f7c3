"""Train a transvae model: ``python tools/train.py CONFIG [--preset cpu] [--work-dir DIR] [--resume [auto|PATH]] ...``.

``python tools/train.py -h`` lists the flags. The command line lives in :mod:`transvae.apis.train_cli`
(``parse_args``, ``build_config``, ``build_runner``, ``main``), re-exported here for code that loads this script.
"""
from transvae.apis.train_cli import build_config, build_runner, check_strategy_runner, main, parse_args

__all__ = ['build_config', 'build_runner', 'check_strategy_runner', 'main', 'parse_args']

if __name__ == '__main__':
    main()

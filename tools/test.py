"""Evaluate checkpoints: ``python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--report report.md]`` or
several models side by side with ``--models CFG[:CKPT] ... --datasets NAME=PATH ... --resolutions R ...``.

``python tools/test.py -h`` lists the flags; the command line is :mod:`transvae.apis.test_cli`.
"""
from transvae.apis.test_cli import main

if __name__ == '__main__':
    main()

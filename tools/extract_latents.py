"""Extract VAE posterior means of a dataset into safetensors shards:
``python tools/extract_latents.py CONFIG CKPT --out DIR [--split test|val|train] [--flip] [--preset cpu] ...``.

``python tools/extract_latents.py -h`` lists the flags; the command line is :mod:`transvae.apis.extract_latents_cli`,
the extraction :mod:`transvae.apis.latents`.
"""
from transvae.apis.extract_latents_cli import main

if __name__ == '__main__':
    main()

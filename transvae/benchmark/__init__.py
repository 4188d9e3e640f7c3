"""Speed / memory / complexity benchmark of VAEs against the SD-VAE reference (``tools/analysis_tools/benchmark.py``
is its command line): :class:`BenchmarkOptions` says what to measure, :func:`run_benchmark` measures it,
:func:`print_report` prints the results."""
from .options import BenchmarkOptions
from .report import print_report
from .suite import run_benchmark, run_switches
from .targets import SD_VAE_ARCH, CodecTarget, build_ours, build_sdvae, codec_macs, macs_of, train_step_flops

__all__ = ['BenchmarkOptions', 'CodecTarget', 'SD_VAE_ARCH', 'build_ours', 'build_sdvae', 'codec_macs', 'macs_of',
           'print_report', 'run_benchmark', 'run_switches', 'train_step_flops']

"""The fault drill: a project outside the library (``pip install transvae`` does not ship it), imported from the
repository root as ``projects.fault_drill.fault_drill``.

:mod:`.drills` (the table of drills, :func:`~.drills.run_drills`, the command line behind
``tools/analysis_tools/fault_drill.py``), :mod:`.hook` (``FaultInjectionHook``: SIGKILL, a killed or failing
checkpoint write, NaN / Inf; only the drill's configs add it, through ``custom_imports``), :mod:`.lib` (the tiny drill
model and config, image sets, tools run in forked children) and the drills by theme: :mod:`.cases` (kills, disk full,
corrupt files, NaN, malformed configs, odd images, a killed rank), :mod:`.cli_inputs`, :mod:`.dit`, :mod:`.docs`,
:mod:`.inputs`, :mod:`.remote`, :mod:`.user_data`, :mod:`.workdir`. The CI subset and one test per defect the drill
found are in ``tests/reliability/``.
"""

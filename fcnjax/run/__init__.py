"""The machinery of a run, beneath the papers' ideas: user errors (``errors``, importing
nothing of fcnjax), config checks before anything is written (``safeguards``), the train
state made and restored once (``state``), the workdir and its lock (``workdir``), verified
checkpoints (``checkpoint``, ``fingerprint``), SIGINT / SIGTERM (``interrupts``), devices
and hosts (``parallel``), the compilation cache (``compile_cache``), metrics and pictures
(``reporting``, ``visualize``)."""

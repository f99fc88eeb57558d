"""Test-only, on the PYTHONPATH of the distributed tests' Celery workers (tests/support/celery.py):
registers `crash_barrier` with dlt's step tracking once `dlt.pipeline` is imported, so a test
can hold a real load at a dlt step boundary and SIGKILL the worker there.

Nothing of SignalRoom's code is replaced: dlt calls its tracking modules at every step start
and end; this adds one that waits while a hold file exists. Without SIGNALROOM_CRASH_DIR it
does nothing.
"""

import os

if os.environ.get("SIGNALROOM_CRASH_DIR"):
    import importlib.abc
    import importlib.machinery
    import sys

    class _AfterDltPipeline(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "dlt.pipeline":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_register(module):
                exec_module(module)
                import crash_barrier
                from dlt.pipeline import trace

                trace.TRACKING_MODULES.append(crash_barrier)

            spec.loader.exec_module = exec_and_register
            return spec

    sys.meta_path.insert(0, _AfterDltPipeline())

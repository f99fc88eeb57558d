"""Put this bundle version's `include/` first on the import path; every DAG file runs it.

Why: Airflow 3 only appends a bundle's root folder to `sys.path` (dag-processor and task
runner alike), while the package lives in `include/signalroom`. Resolving `include/` from the
DAG file's own location makes the package importable with no PYTHONPATH, for any bundle type
(Git, local folder, the dags folder of a checkout), and makes a task import the package of the
bundle version it was started for (a Git bundle checks each version out in its own folder).

A `signalroom` imported earlier in the same process from anywhere else (another bundle
version, the plugin's checkout) is dropped from `sys.modules`, so the next import loads this
version's code. Run it with `runpy.run_path`, never import it: it must not be cached either.
docs/ARCHITECTURE.md ("Import path") says why this and not PYTHONPATH or an installed package.
"""

import sys
from pathlib import Path

_PACKAGE = "signalroom"
_include = Path(__file__).resolve().parent

sys.path[:] = [str(_include), *(p for p in sys.path if p != str(_include))]

_loaded = getattr(sys.modules.get(_PACKAGE), "__file__", None)
if _loaded and Path(_loaded).resolve().parent.parent != _include:
    for _name in [n for n in sys.modules if n == _PACKAGE or n.startswith(_PACKAGE + ".")]:
        del sys.modules[_name]

"""A ``--workers`` process: ``python -m layerforge.search.worker JOB_JSON`` (started by
:func:`layerforge.search.api.search`, never by hand). It loads the study's spec through the front door,
opens the shared study and runs trials until the study has its trials. Its output goes to
``workers/worker-<i>.log`` in the study directory; the exit code tells the parent how it ended
(0 done, 124 timeout, 130 interrupted, 2 an error)."""
from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    from ..errors import LayerforgeError
    from .api import EXIT, Job, run_job

    args = sys.argv[1:] if argv is None else argv
    job = Job(**json.loads(args[0]))
    try:
        status = run_job(job)
    except LayerforgeError as e:
        print(f"{e.title}: {e}" + (f"\n  hint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"worker finished: {status}", flush=True)
    return EXIT[status]


if __name__ == "__main__":
    sys.exit(main())

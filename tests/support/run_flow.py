"""Run one flow in a fresh process against $PREFECT_API_URL and print its result (operations tests).

``python -m tests.support.run_flow backfill '{"archive": ...}'`` runs the flow as a deployment's
process would: its own interpreter, the parameters as JSON, the real server in the environment.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    from flows.backfill import backfill
    from flows.operational import operational
    from flows.process import process_granule

    flows = {"backfill": backfill, "operational": operational, "process": process_granule}
    name, parameters = sys.argv[1], json.loads(sys.argv[2])
    result = flows[name](request=parameters)
    print("RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Counts the HTTP requests a schemathesis run made, from its NDJSON event report.

Prints `TOTAL NOT_FOUND` (requests made, and how many of them were answered 404) on stdout.

Each `ScenarioFinished` event carries the scenario's recorder, whose `interactions` map holds
one request/response pair per request sent. On stderr it also prints how the answers split
by status and by phase.
"""

import collections
import json
import sys


def main(paths):
    total = 0
    statuses = collections.Counter()
    phases = collections.Counter()
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                event = json.loads(line).get("ScenarioFinished")
                if event is None:
                    continue
                interactions = event.get("recorder", {}).get("interactions", {})
                for interaction in interactions.values():
                    response = interaction.get("response") or {}
                    status = response.get("status_code", "no response")
                    statuses[status] += 1
                    phases[event.get("phase", "?")] += 1
                    total += 1
    by_status = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=str))
    by_phase = ", ".join(f"{p}: {n}" for p, n in sorted(phases.items()))
    print(f"fuzz: by status {{{by_status}}}", file=sys.stderr)
    print(f"fuzz: by phase {{{by_phase}}}", file=sys.stderr)
    print(total, statuses[404])


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: schemathesis_count.py REPORT.ndjson...")
    main(sys.argv[1:])

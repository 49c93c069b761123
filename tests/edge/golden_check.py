# Decodes every golden payload in tests/fixtures and prints one JSON line of
# outcomes. Runs under CPython and under the real `micropython` binary, so
# both runtimes are held to the same expectations.
# Usage: micropython golden_check.py FIXTURES_DIR  (with the firmware on the path)

import json
import sys

from edge import contract


def outcomes(fixtures_dir):
    with open(fixtures_dir + "/payloads.json") as f:
        manifest = json.load(f)
    results = []
    for case in manifest["cases"]:
        with open(fixtures_dir + "/payloads/" + case["file"], "rb") as f:
            raw = f.read()
        try:
            batch = contract.decode_telemetry(raw, case["kind"], manifest["now_ms"])
        except contract.ContractError as exc:
            results.append({"error": exc.reason})
            continue
        results.append({
            "samples": len(batch.samples),
            "readings": sum(len(s[1]) for s in batch.samples),
            "rejects": [r[3] for r in batch.rejects],
            "hist": batch.hist,
            "dropped": batch.dropped,
        })
    return manifest["cases"], results


if __name__ == "__main__":
    print(json.dumps(outcomes(sys.argv[1])[1]))

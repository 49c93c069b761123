# Decodes every golden payload in tests/fixtures and prints one JSON line of
# outcomes. Runs under CPython and under the real `micropython` binary, so
# both runtimes are held to the same expectations.
# Usage: micropython golden_check.py FIXTURES_DIR  (with the firmware on the path)

import json
import sys

from edge import contract


def _manifest(fixtures_dir):
    with open(fixtures_dir + "/payloads.json") as f:
        return json.load(f)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def outcomes(fixtures_dir):
    """Telemetry cases: (cases, what the decoder made of each)."""
    manifest = _manifest(fixtures_dir)
    results = []
    for case in manifest["cases"]:
        raw = _read(fixtures_dir + "/payloads/" + case["file"])
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
            "boot": batch.boot,
        })
    return manifest["cases"], results


def status_outcomes(fixtures_dir):
    """Status (birth and last will) cases: (cases, the decoded dict or the error)."""
    manifest = _manifest(fixtures_dir)
    results = []
    for case in manifest["status_cases"]:
        raw = _read(fixtures_dir + "/status/" + case["file"])
        try:
            results.append({"status": contract.decode_status(raw)})
        except contract.ContractError as exc:
            results.append({"error": exc.reason})
    return manifest["status_cases"], results


if __name__ == "__main__":
    print(json.dumps({"telemetry": outcomes(sys.argv[1])[1], "status": status_outcomes(sys.argv[1])[1]}))

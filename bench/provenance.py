"""Where a benchmark's numbers come from, stamped into its JSON in bench/results/: the
date, the commit of the tree that ran it (`+dirty` when it had uncommitted changes),
the machine (cores, CPU model, memory) and the command. bench/readme_tables.py prints
this under every table it writes into the README.

    /usr/bin/python3 bench/provenance.py bench/results/NAME.json COMMAND...

adds the stamp to a JSON a benchmark has just written; from Python, `stamp(command)`.
"""
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 2**20, 1)}


def commit():
    """HEAD, and `+dirty` when tracked files other than the results differ from it (one
    benchmark's JSON written before the next one runs is not a change of what runs)."""
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results")
    return _git("rev-parse", "--short=7", "HEAD") + ("+dirty" if changed else "")


def stamp(command):
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "commit": commit(),
            "machine": machine(), "command": command}


def main():
    path, command = sys.argv[1], " ".join(sys.argv[2:])
    with open(path) as f:
        result = json.load(f)
    extra = result.get("machine") if isinstance(result.get("machine"), dict) else {}
    result.update(stamp(command))
    result["machine"] = {**extra, **result["machine"]}  # what a benchmark measured of the machine stays
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()

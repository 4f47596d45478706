"""bench/readme_tables.py: the README's tables agree with bench/results, and the check
fails when a number in a table, or its JSON, changes, or when a JSON has no stamp."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "readme_tables.py")


def check(readme, results=os.path.join(ROOT, "bench", "results")):
    return subprocess.run([sys.executable, SCRIPT, "--check", "--readme", readme, "--results", results],
                          capture_output=True, text=True)


class ReadmeTables(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.readme = os.path.join(self.dir, "README.md")
        shutil.copy(os.path.join(ROOT, "README.md"), self.readme)
        self.results = os.path.join(self.dir, "results")
        shutil.copytree(os.path.join(ROOT, "bench", "results"), self.results)
        with open(self.readme) as f:
            self.text = f.read()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_the_readme_agrees_with_bench_results(self):
        r = check(os.path.join(ROOT, "README.md"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("tables agree", r.stdout)
        self.assertGreaterEqual(self.text.count("<!-- table: "), 5)

    def test_a_number_edited_in_a_table_is_caught(self):
        start = self.text.index("<!-- table: plan -->")
        row = self.text.index("| peak resident memory |", start)
        end = self.text.index("\n", row)
        with open(self.readme, "w") as f:
            f.write(self.text[:row] + "| peak resident memory | 1.0 MiB |" + self.text[end:])
        r = check(self.readme, self.results)
        self.assertEqual(r.returncode, 1)
        self.assertIn("-| peak resident memory | 1.0 MiB |", r.stdout)

    def test_a_new_run_changes_the_table(self):
        path = os.path.join(self.results, "plan.json")
        with open(path) as f:
            plan = json.load(f)
        plan["best_wall_s"] = 9.87
        with open(path, "w") as f:
            json.dump(plan, f)
        r = check(self.readme, self.results)
        self.assertEqual(r.returncode, 1)
        self.assertIn("+| wall-clock time, best of", r.stdout)
        self.assertIn("9.87 s", r.stdout)

    def test_a_result_without_its_stamp_is_refused(self):
        path = os.path.join(self.results, "plan.json")
        with open(path) as f:
            plan = json.load(f)
        del plan["commit"]
        with open(path, "w") as f:
            json.dump(plan, f)
        r = check(self.readme, self.results)
        self.assertEqual(r.returncode, 1)
        self.assertIn("plan.json has no commit", r.stderr)


if __name__ == "__main__":
    unittest.main()

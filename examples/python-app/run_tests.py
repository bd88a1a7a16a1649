"""Runs the unittest suite in tests/ and writes a summary with no timings (a step's output must be
the same in every build): one line per test and its outcome, then the totals. Exit 1 on failure."""

import sys
import unittest



def ids(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from ids(item)
        else:
            yield item.id()


suite = unittest.defaultTestLoader.discover("tests", top_level_dir=".")
tests = sorted(ids(suite))  # before the run, which lets go of each test it ran
result = unittest.TestResult()
suite.run(result)
failed = {test.id(): "FAIL" for test, _ in result.failures}
failed.update({test.id(): "ERROR" for test, _ in result.errors})
for test in tests:
    print(test, failed.get(test, "ok"))
print("ran %d tests: %s" % (result.testsRun, "OK" if result.wasSuccessful() else "FAILED"))
for test, trace in result.failures + result.errors:
    print(trace, file=sys.stderr)
sys.exit(0 if result.wasSuccessful() else 1)

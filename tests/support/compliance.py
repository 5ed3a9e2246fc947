"""Run the IOOS compliance-checker on a file and collect its findings by priority."""

from __future__ import annotations

import json
import warnings
from pathlib import Path


def compliance_issues(path: Path, tests: tuple[str, ...] = ("cf:1.10", "acdd:1.3")) -> dict[str, list[str]]:
    """{"high": [...], "medium": [...], "low": [...]} of failed checks, each 'suite: check: messages'."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = path.with_suffix(".compliance.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # offline: the checker falls back to its packaged name table
        ComplianceChecker.run_checker(
            str(path), list(tests), 0, "normal", output_filename=str(report), output_format="json"
        )
    results = json.loads(report.read_text())
    report.unlink()
    issues: dict[str, list[str]] = {"high": [], "medium": [], "low": []}
    for suite, result in results.items():
        for level in issues:
            for check in result[f"{level}_priorities"]:
                scored, possible = check["value"]
                if scored < possible:
                    issues[level].append(f"{suite}: {check['name']}: {'; '.join(check['msgs'])}")
    return issues

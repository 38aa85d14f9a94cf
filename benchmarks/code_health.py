"""Code health of the package: lines per subpackage, long functions, long argument lists.

Writes ``benchmarks/results/code_health.json`` (or ``--output``). Used to measure a refactor
before and after; ``duplicates`` (the tool library's) counts repeated blocks separately.

    python benchmarks/code_health.py [--label before] [--output path]
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path

from _results import write_json

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_mesoscale"
LONG_FUNCTION_LINES = 80
MANY_ARGUMENTS = 10


def measure(package: Path = PACKAGE) -> dict:
    """Lines per subpackage and every function longer than 80 lines or with > 10 arguments."""
    lines: Counter[str] = Counter()
    long_functions, wide_functions = [], []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        group = relative.parts[0] if len(relative.parts) > 1 else "(top level)"
        text = path.read_text()
        lines[group] += text.count("\n")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            where = f"{relative}:{node.lineno} {node.name}"
            length = node.end_lineno - node.lineno + 1
            arguments = node.args
            count = len(arguments.posonlyargs + arguments.args + arguments.kwonlyargs)
            count -= int(bool(arguments.args) and arguments.args[0].arg in ("self", "cls"))
            if length > LONG_FUNCTION_LINES:
                long_functions.append({"function": where, "lines": length})
            if count > MANY_ARGUMENTS:
                wide_functions.append({"function": where, "arguments": count})
    return {
        "lines_per_package": dict(sorted(lines.items())),
        "lines_total": sum(lines.values()),
        f"functions_over_{LONG_FUNCTION_LINES}_lines": sorted(
            long_functions, key=lambda f: -f["lines"]
        ),
        f"functions_over_{MANY_ARGUMENTS}_arguments": sorted(
            wide_functions, key=lambda f: -f["arguments"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label", default="current")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    result = measure()
    result["label"] = args.label
    default = Path(__file__).parent / "results" / "code_health.json"
    path = write_json(args.output or default, result)
    print(
        f"{result['lines_total']} lines; "
        f"{len(result[f'functions_over_{LONG_FUNCTION_LINES}_lines'])} functions > "
        f"{LONG_FUNCTION_LINES} lines; "
        f"{len(result[f'functions_over_{MANY_ARGUMENTS}_arguments'])} with > {MANY_ARGUMENTS} "
        f"arguments → {path}"
    )


if __name__ == "__main__":
    main()

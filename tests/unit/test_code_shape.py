"""Functions stay small enough to read: at most 50 lines and 6 parameters.

A function may go past either limit only with a comment starting ``# shape:`` on the line above
its ``def`` that says why. (``self``/``cls`` do not count as parameters.)
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "idle_culler_daemon"
MAX_LINES = 50
MAX_PARAMETERS = 6


def too_big(path):
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        length = node.end_lineno - node.lineno + 1
        arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        count = len([a for a in arguments if a.arg not in ("self", "cls")])
        reason = lines[first - 2].strip() if first >= 2 else ""
        if (length > MAX_LINES or count > MAX_PARAMETERS) and not reason.startswith("# shape:"):
            found.append("%s:%d %s (%d lines, %d parameters)"
                         % (path.name, node.lineno, node.name, length, count))
    return found


def test_code_shape_no_function_is_too_long_or_takes_too_many_parameters():
    modules = sorted(PACKAGE.glob("*.py"))
    assert modules, "no module found in %s" % PACKAGE
    offenders = [item for path in modules for item in too_big(path)]
    assert offenders == []


def test_code_shape_the_check_sees_a_long_function(tmp_path):
    body = "\n".join("    x = %d" % i for i in range(60))
    source = tmp_path / "sample.py"
    source.write_text("def long_one(a, b, c, d, e, f, g):\n%s\n\n# shape: a reason\n"
                      "def excused(a, b, c, d, e, f, g):\n    pass\n" % body)
    assert too_big(source) == ["sample.py:1 long_one (61 lines, 7 parameters)"]

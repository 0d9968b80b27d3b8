"""pyexec harness: runs one user script inside the jail and reports its outcome.

Protocol (the Go side is executor/result.go):
  fd 0  empty (stdin): input() raises EOFError at once.
  fd 1  the script's stdout, passed through unbuffered.
  fd 2  the script's stderr; not part of the API.
  fd 3  the script's source, UTF-8, read to EOF before any user code runs.
        With --preload, numpy and pandas are imported before it is read.
  fd 4  the report: exactly one JSON object, written after main() returned or
        the script failed, then the process leaves with os._exit. Only the
        harness's own process writes it: a process the script forked that
        comes back through the harness exits without a report.

The report is {"ok": true, "result": <value>} or
{"ok": false, "error_type": <type>, "error": <message>, "traceback": <text>}.
Error types reported here: no_main, syntax_error, exception, invalid_result,
memory_limit, output_limit and exited. The harness shares its process with the
user's code, so the Go side treats every byte of the report as untrusted.

Standard library only: the harness must not pay for (or depend on) pandas or
numpy, which it recognises by their type's module name instead.
"""

import ast
import asyncio
import inspect
import json
import linecache
import math
import os
import sys
import traceback
import types

SCRIPT_FD = 3
REPORT_FD = 4
SCRIPT_FILENAME = "<script>"
# Any name but __main__, so an `if __name__ == "__main__": main()` guard does
# not fire and main() runs exactly once, called by the harness.
MODULE_NAME = "__script__"
MAX_RESULT_DEPTH = 500
MAX_MESSAGE_CHARS = 4096
MAX_TRACEBACK_CHARS = 60 * 1024
# Results carry integers of any size exactly, but Python 3.11 refuses to write
# integers of over 4300 digits as text (int.__str__ is quadratic). The report
# lifts that guard and sets its own, far higher: one integer of this many
# digits takes about 0.1 s to write.
MAX_RESULT_INT_DIGITS = 100_000
_MAX_RESULT_INT_BITS = int(MAX_RESULT_INT_DIGITS * math.log2(10))
PANDAS_HINTS = {
    "DataFrame": 'use df.to_dict(orient="records")',
    "Series": "use series.tolist() or series.to_dict()",
    "Index": "use index.tolist()",
}


class InvalidResult(Exception):
    """main() returned something that is not representable as strict JSON."""

    def __init__(self, why, path):
        super().__init__(why)
        self.why = why
        self.path = path


def has_top_level_main(tree):
    """Tells whether the module binds `main` at the top level.

    Only the syntax is read; no user code runs. Statements that do not open a
    scope (if, try, with, loops, match) are searched too, since what they bind
    is still a module global; function and class bodies are not. A
    comprehension's own variables are its own, but a := inside it binds in
    the module. A bare annotation (`main: int`) binds nothing.
    """
    pending = [(node, False) for node in tree.body]
    while pending:
        node, in_comprehension = pending.pop()
        if isinstance(node, ast.NamedExpr) and node.target.id == "main":
            return True
        if isinstance(node, ast.AnnAssign) and node.value is None:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "main":
                return True
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == "main" for alias in node.names):
                return True
            continue
        if isinstance(node, ast.Name) and node.id == "main" and isinstance(node.ctx, ast.Store) and not in_comprehension:
            return True
        if isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name == "main":
            return True
        inner = in_comprehension or isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp))
        pending.extend((child, inner) for child in ast.iter_child_nodes(node))
    return False


def _path(parts):
    return "result" + "".join(parts)


def to_json_value(value):
    """Converts main()'s return value to plain JSON types, or raises InvalidResult.

    Iterative rather than recursive, so a deeply nested value is an
    invalid_result, not a crash of the harness.
    """
    root = [None]
    # Each job: (value, container, key, path parts, ids of containers above).
    stack = [(value, root, 0, (), frozenset())]
    while stack:
        item, container, key, parts, ancestors = stack.pop()
        if len(parts) > MAX_RESULT_DEPTH:
            raise InvalidResult("nested more than %d levels deep" % MAX_RESULT_DEPTH, _path(parts))
        converted, children = _convert_one(item, parts)
        container[key] = converted
        if children is None:
            continue
        if id(item) in ancestors:
            raise InvalidResult("circular reference", _path(parts))
        inner = ancestors | {id(item)}
        for child_key, child_value, part in reversed(children):
            stack.append((child_value, converted, child_key, parts + (part,), inner))
    return root[0]


def _convert_one(item, parts):
    """Returns (converted, children); children lists (key, value, path part)."""
    if item is None or item is True or item is False:
        return item, None
    if isinstance(item, int):
        number = int(item)
        if number.bit_length() > _MAX_RESULT_INT_BITS:
            raise InvalidResult("integer of more than %d digits" % MAX_RESULT_INT_DIGITS, _path(parts))
        return number, None
    if isinstance(item, float):
        return _finite(float(item), parts), None
    if isinstance(item, str):
        return _unicode(str(item), parts), None
    if isinstance(item, dict):
        converted = {}
        children = []
        for k, v in item.items():
            name = _json_key(k, parts)
            children.append((name, v, "[%r]" % (name,)))
        return converted, children
    if isinstance(item, (list, tuple)):
        converted = [None] * len(item)
        return converted, [(i, v, "[%d]" % i) for i, v in enumerate(item)]
    module = type(item).__module__ or ""
    name = type(item).__name__
    if module.split(".")[0] == "numpy":
        return _convert_numpy(item, parts)
    if module.split(".")[0] == "pandas":
        hint = PANDAS_HINTS.get(name, "convert it to lists or dicts")
        raise InvalidResult("pandas %s is not JSON serializable (%s)" % (name, hint), _path(parts))
    raise InvalidResult("%s is not JSON serializable" % name, _path(parts))


def _finite(number, parts):
    if math.isnan(number):
        raise InvalidResult("NaN is not allowed", _path(parts))
    if math.isinf(number):
        raise InvalidResult("Infinity is not allowed", _path(parts))
    return number


def _unicode(text, parts):
    # A lone surrogate (e.g. from "\ud800" or a surrogateescape decode) has
    # no UTF-8 form, so no strict JSON text can carry it.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidResult("string with a lone surrogate is not valid Unicode", _path(parts)) from None
    return text


def _json_key(key, parts):
    # The same keys json.dumps accepts, converted the same way.
    if isinstance(key, str):
        return _unicode(str(key), parts)
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, int) and not isinstance(key, bool):
        number, _ = _convert_one(int(key), parts)
        return str(number)
    if isinstance(key, float):
        return repr(_finite(float(key), parts))
    raise InvalidResult("dict key of type %s is not allowed" % type(key).__name__, _path(parts))


def _convert_numpy(item, parts):
    name = type(item).__name__
    if getattr(item, "ndim", None) == 0 and hasattr(item, "item"):
        plain = item.item()
        if plain is None or isinstance(plain, (bool, int, float, str)):
            return _convert_one(plain, parts)
    elif name == "ndarray":
        plain = item.tolist()
        return [None] * len(plain), [(i, v, "[%d]" % i) for i, v in enumerate(plain)]
    raise InvalidResult("numpy %s is not JSON serializable" % name, _path(parts))


def user_traceback(exc):
    """The exception's traceback with only the script's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == SCRIPT_FILENAME]
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(traceback.format_list(frames))
    # The exception's own text is capped like the error message: a huge
    # message must be reported as the exception it is, not overflow the
    # report and come back as an output_limit.
    lines.extend(line[:MAX_MESSAGE_CHARS] for line in traceback.format_exception_only(type(exc), exc))
    text = "".join(lines)
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-MAX_TRACEBACK_CHARS:]
    return text


def describe(exc):
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a user __str__ that raises must not crash the harness
        message = "<exception str() failed>"
    text = type(exc).__name__ + (": " + message if message else "")
    return text[:MAX_MESSAGE_CHARS]


def exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def run(source):
    """Runs the script and returns the report as a dict."""
    try:
        tree = ast.parse(source, SCRIPT_FILENAME)
    except SyntaxError as exc:
        return failure("syntax_error", "%s: %s (line %s)" % (type(exc).__name__, exc.msg, exc.lineno))
    except (RecursionError, ValueError) as exc:
        return failure("syntax_error", "SyntaxError: %s" % describe(exc))
    except MemoryError:
        return failure("memory_limit", "")
    if not has_top_level_main(tree):
        return failure("no_main", "")

    # Lets tracebacks show the script's source lines.
    lines = source.splitlines(keepends=True)
    linecache.cache[SCRIPT_FILENAME] = (len(source), None, lines, SCRIPT_FILENAME)
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = SCRIPT_FILENAME
    sys.modules[MODULE_NAME] = module
    try:
        code = compile(tree, SCRIPT_FILENAME, "exec")
        exec(code, module.__dict__)
        main = module.__dict__.get("main")
        if main is None:
            return failure("no_main", "")
        value = main()
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
    except SystemExit as exc:
        report = failure("exited", "Script exited with code %d before main() returned" % exit_code(exc))
        report["exit_code"] = exit_code(exc)
        return report
    except MemoryError:
        return failure("memory_limit", "")
    except BaseException as exc:  # noqa: BLE001 - every user failure becomes a report
        return failure("exception", describe(exc), user_traceback(exc))
    try:
        if hasattr(sys, "set_int_max_str_digits"):
            # User code is done; to_json_value bounds the integers instead.
            sys.set_int_max_str_digits(0)
        return {"ok": True, "result": to_json_value(value)}
    except InvalidResult as exc:
        return failure(
            "invalid_result",
            "main() must return a JSON-serializable object: %s at %s" % (exc.why, exc.path),
        )
    except MemoryError:
        return failure("memory_limit", "")
    except BaseException as exc:  # noqa: BLE001 - e.g. a __index__ or tolist() that raises
        return failure("invalid_result", "main() must return a JSON-serializable object: %s" % describe(exc))


async def _await(awaitable):
    return await awaitable


def failure(error_type, message, trace=""):
    return {"ok": False, "error_type": error_type, "error": message, "traceback": trace}


def write_report(report):
    try:
        data = json.dumps(report, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, RecursionError, MemoryError) as exc:
        data = json.dumps(failure("invalid_result", "main() must return a JSON-serializable object: %s" % describe(exc)))
    # Results were checked to be valid Unicode; an error message or traceback
    # may still hold lone surrogates, which become U+FFFD rather than bytes
    # that are not UTF-8 (which the executor would refuse as a forged report).
    payload = data.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
    view = memoryview(payload)
    while view:
        written = os.write(REPORT_FD, view)
        view = view[written:]


def read_script():
    chunks = []
    while True:
        chunk = os.read(SCRIPT_FD, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(SCRIPT_FD)
    # utf-8-sig drops a leading byte order mark, as Python does for a source
    # file; left in, it would be a syntax error.
    return b"".join(chunks).decode("utf-8-sig")


def flush_streams():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a script may have replaced or closed them
            pass


def child_status(report):
    """The exit status plain Python gives a process that ends this way."""
    if report["ok"]:
        return 0
    return report.get("exit_code", 1) & 0xFF


def preload():
    """Imports numpy and pandas before the script arrives.

    With --preload (pool mode) the jail is started ahead of its script, and
    the import, the bulk of a pandas script's run time, is paid while it
    waits. The modules are imported exactly as the script would import them.
    """
    for name in ("numpy", "pandas"):
        try:
            __import__(name)
        except ImportError:
            pass


def main():
    if sys.argv[1:] == ["--preload"]:
        preload()
        del sys.argv[1:]
    harness_pid = os.getpid()
    report = run(read_script())
    flush_streams()
    if os.getpid() != harness_pid:
        # A process the script forked left main() through the harness (by
        # returning, raising or sys.exit). Only the harness's own process
        # reports; a second report would corrupt the first. The child ends
        # as it would in plain Python.
        os._exit(child_status(report))
    report.pop("exit_code", None)
    try:
        write_report(report)
    finally:
        # Skips interpreter shutdown (~190 ms with pandas loaded) and any
        # atexit handler or thread the script left behind.
        os._exit(0)


if __name__ == "__main__":
    main()

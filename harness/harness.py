"""pyexec harness: runs one user script inside the jail and reports its outcome.

Protocol (the Go side is the executor's jail engine and result.go):
  fd 0  the script's standard input: empty unless the job has "stdin".
  fd 1  the script's stdout, passed through unbuffered.
  fd 2  the script's stderr; not part of the API.
  fd 3  the job, one JSON object read to EOF before any user code runs:
          {"script": <source>,
           "input": <any JSON value>        only when the request had input,
           "stdin": <text>,                 optional,
           "files": [{"path": <relative>, "content": <base64>}],   optional,
           "outputs": {"max_files": N, "max_bytes": N, "max_display": N},
           "prepare_outputs": true,         optional: make an empty outputs/
           "rlimit_as": N}                  optional: lower RLIMIT_AS to the
                                            address space held now plus N
        With --preload, numpy and pandas are imported before it is read,
        and then PRELOADED is written on fd 4, which the executor reads
        (and so removes) before it sends the job.
  fd 4  the report: exactly one JSON object, written after main() returned or
        the script failed; then the harness closes fds 1, 2 and 4 and the
        process leaves with os._exit. Only the harness's own process writes
        it: a process the script forked that comes back through the harness
        exits without a report.

Before user code runs, the job's files are written under the working
directory and, with prepare_outputs, an empty outputs/ directory is made
there. After main() returns, the regular files under outputs/ (never
through a symlink, never a device or fifo) come back in the report, within
the job's caps.

Rich outputs: display(obj) is a builtin, as in IPython, and every
matplotlib figure shown (plt.show()) or still open when main() returns is
displayed as a PNG; they come back, in the order produced, within the
job's caps: at most max_display items, whose bytes count against
max_bytes together with the output files.

The report is {"ok": true, "result": <value>[, "files": [{"path", "content",
"bytes"}]][, "display": [{"type": <MIME>, "data": <text, or base64 for
image/png>, "bytes": N}]]} or {"ok": false, "error_type": <type>, "error": <message>,
"traceback": <text>}. Error types reported here: invalid_request (main's
signature does not fit the request's input), no_main, syntax_error,
exception, invalid_result, memory_limit, output_limit and exited. The harness
shares its process with the user's code, so the Go side treats every byte of
the report as untrusted.

Standard library only: the harness must not pay for (or depend on) pandas or
numpy, which it recognises by their type's module name instead.
"""

import ast
import asyncio
import base64
import builtins
import errno
import inspect
import json
import linecache
import math
import os
import re
import resource
import stat
import sys
import traceback
import types

SCRIPT_FD = 3
REPORT_FD = 4
# Written on the report channel once a --preload is done: from then on the
# process holds what it will hold when its job arrives, which is what a
# request's tighter memory limit counts from (executor/internal/jail/mode_pool.go).
PRELOADED = b"P"
SCRIPT_FILENAME = "<script>"
OUTPUTS_DIR = "outputs"
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


# NO_INPUT stands for a request without "input": main() is called with no
# argument. (None cannot: JSON null is an input like any other.)
NO_INPUT = object()


def run(source, input=NO_INPUT, outputs=None):
    """Runs the script and returns the report as a dict.

    main is called with input as its one argument when input is given, with
    none otherwise. outputs, a (max_files, max_bytes) pair, asks for the
    files left under outputs/ to come back with a successful result.
    """
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
        if not callable(main):
            return failure("exception", "main is not callable: %s" % type(main).__name__)
        mismatch = signature_mismatch(main, input is not NO_INPUT)
        if mismatch:
            return failure("invalid_request", mismatch)
        value = main() if input is NO_INPUT else main(input)
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
        report = {"ok": True, "result": to_json_value(value)}
    except InvalidResult as exc:
        return failure(
            "invalid_result",
            "main() must return a JSON-serializable object: %s at %s" % (exc.why, exc.path),
        )
    except MemoryError:
        return failure("memory_limit", "")
    except BaseException as exc:  # noqa: BLE001 - e.g. a __index__ or tolist() that raises
        return failure("invalid_result", "main() must return a JSON-serializable object: %s" % describe(exc))
    if outputs is not None:
        max_files, max_bytes = outputs
        try:
            shown = DISPLAY.finish()
            files = collect_outputs(max_files, max_bytes, DISPLAY.bytes)
        except OutputProblem as exc:
            return failure(exc.error_type, str(exc))
        except MemoryError:
            return failure("memory_limit", "")
        except BaseException as exc:  # noqa: BLE001 - a figure that cannot be drawn
            return failure("exception", "displaying a figure: %s" % describe(exc), user_traceback(exc))
        if files:
            report["files"] = files
        if shown:
            report["display"] = shown
    return report


def signature_mismatch(main, has_input):
    """Says why main cannot be called as the request asks, or returns None.

    Checked before main runs, so the caller hears what main takes rather
    than a TypeError the script's own code may raise for other reasons.
    """
    try:
        signature = inspect.signature(main)
    except BaseException:  # noqa: BLE001 - no signature to read (a builtin, an odd object): the call decides
        return None
    try:
        if has_input:
            signature.bind(None)
        else:
            signature.bind()
        return None
    except TypeError:
        pass
    try:
        shown = "main%s" % (signature,)
    except BaseException:  # noqa: BLE001 - a parameter's default may have a failing repr
        shown = "main(...)"
    shown = shown[:200]
    if has_input:
        return "%s cannot take the request's 'input' as its one argument: define main(data) to receive it" % shown
    return "%s needs an argument, but the request has no 'input': send 'input', or define main() without parameters" % shown


class OutputProblem(Exception):
    """The files under outputs/ cannot come back: over a cap, or unnamable."""

    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type


def size_text(n):
    """n bytes the way the service's messages state limits (8 MB, 512 KB)."""
    if n % (1 << 20) == 0:
        return "%d MB" % (n >> 20)
    if n % (1 << 10) == 0:
        return "%d KB" % (n >> 10)
    return "%d bytes" % n


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


# The longest output file path the executor takes (its rule for every path:
# PATH_MAX less the terminating NUL).
MAX_OUTPUT_PATH_BYTES = 4095

# Errors that mean a name listed a moment ago is gone or was replaced by a
# symlink or a non-directory while the walk went on: it is skipped, as a
# file that was never there. Any other error fails the collection, naming
# the file, so that nothing is dropped without a word.
_GONE = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)

# The execution's working directory as it was before any user code ran
# (prepare): (path, st_dev, st_ino). outputs/ is found in it whatever
# directory the script changed to. It is held by its identity, not by an
# open descriptor, so that the script inherits none.
WORKDIR = None


def note_workdir():
    """Records the working directory, where outputs/ is collected from."""
    global WORKDIR
    st = os.stat(".")
    WORKDIR = (os.getcwd(), st.st_dev, st.st_ino)


def _workdir():
    """A descriptor of the working directory prepare noted.

    The directory is opened by its path and must be the same directory
    (device and inode), so a script that replaced it cannot point the
    collection elsewhere. Without prepare (the harness's own tests), the
    current directory.
    """
    if WORKDIR is None:
        return os.open(".", _DIR_FLAGS)
    path, dev, ino = WORKDIR
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (dev, ino):
        os.close(fd)
        raise OutputProblem("invalid_result", "Output files cannot be collected: the working directory %s was replaced" % path)
    return fd


def _unreadable(path, exc):
    return OutputProblem("invalid_result", "Output file %s cannot be read: %s" % (_shown(path), exc.strerror or exc))


def _shown(path):
    """path for a message: at most its first 200 characters."""
    return path if len(path) <= 200 else path[:200] + "…"


def collect_outputs(max_files, max_bytes, displayed=0):
    """Reads the regular files under outputs/ of the working directory, sorted by path.

    outputs/ is found in the working directory the execution started in
    (prepare noted it), whatever directory the script changed to. Nothing is reached through a symlink, outputs/ itself
    included: each directory is opened with O_NOFOLLOW relative to its
    parent's descriptor, and each file the same way, and must still be a
    regular file once open, so fifos, sockets and devices are never read.
    The walk holds two descriptors at most, however deep the tree: it goes
    back up through "..", and checks that it came back to the directory it
    left (device and inode), so a process the script left running cannot
    turn the walk elsewhere by moving or swapping a directory while it goes
    on. Returns [{"path", "content" (base64), "bytes"}]; raises
    OutputProblem over a cap, or naming a file that cannot come back.
    """
    workdir = _workdir()
    try:
        root = os.open(OUTPUTS_DIR, _DIR_FLAGS, dir_fd=workdir)
    except OSError as exc:
        if exc.errno in _GONE:
            return []  # no outputs/, or not a directory (a file, a symlink)
        raise _unreadable(OUTPUTS_DIR, exc) from None
    finally:
        os.close(workdir)
    found = []
    # The display items' bytes count against the same budget.
    total = displayed
    fd = root
    # From outputs/ down to the directory fd is: the names in each still to
    # look at, its path, and its device and inode.
    levels = []
    try:
        levels.append(_level(fd, OUTPUTS_DIR))
        while levels:
            names, directory, ident = levels[-1]
            if not names:
                levels.pop()
                if levels:
                    up = os.open("..", _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = up
                    st = os.fstat(fd)
                    if (st.st_dev, st.st_ino) != levels[-1][2]:
                        raise OutputProblem("invalid_result", "Output files cannot be collected: %s was moved while they were read" % _shown(directory))
                continue
            name = names.pop()
            path = directory + "/" + name
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except OSError as exc:
                if exc.errno in _GONE:
                    continue
                raise _unreadable(path, exc) from None
            if stat.S_ISDIR(mode):
                try:
                    inner = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in _GONE:
                        continue
                    raise _unreadable(path, exc) from None
                os.close(fd)
                fd = inner
                levels.append(_level(fd, path))
                continue
            if not stat.S_ISREG(mode):
                continue  # a symlink, fifo, socket or device: never followed or read
            if len(path.encode("utf-8", "surrogateescape")) > MAX_OUTPUT_PATH_BYTES:
                raise OutputProblem("invalid_result", "Output file path is longer than %d bytes: %s" % (MAX_OUTPUT_PATH_BYTES, _shown(path)))
            try:
                data = _read_regular(fd, name, max_bytes - total + 1)
            except OSError as exc:
                raise _unreadable(path, exc) from None
            if data is None:
                continue
            if len(found) == max_files:
                raise OutputProblem("output_limit", "Output limit exceeded (more than %d output files)" % max_files)
            total += len(data)
            if total > max_bytes:
                what = "display and output files" if displayed else "output files"
                raise OutputProblem("output_limit", "Output limit exceeded (%s over %s)" % (what, size_text(max_bytes)))
            found.append((path, data))
    except OSError as exc:
        raise _unreadable(levels[-1][1] if levels else OUTPUTS_DIR, exc) from None
    finally:
        os.close(fd)
    files = []
    for path, data in sorted(found):
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise OutputProblem("invalid_result", "Output file name is not valid UTF-8: %r" % _shown(path)) from None
        files.append({"path": path, "content": base64.b64encode(data).decode("ascii"), "bytes": len(data)})
    return files


def _level(fd, path):
    """A directory of the walk: the names in it, its path and identity."""
    st = os.fstat(fd)
    return (os.listdir(fd), path, (st.st_dev, st.st_ino))


def _read_regular(dir_fd, name, limit):
    """Up to limit bytes of the regular file name in dir_fd; None if it is
    gone or was replaced by anything else (a symlink, a fifo) since it was
    listed. Raises OSError when it cannot be read."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _GONE + (errno.ENXIO,):
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return _read_at_most(fd, limit)
    finally:
        os.close(fd)


def _read_at_most(fd, limit):
    chunks = []
    while limit > 0:
        chunk = os.read(fd, min(limit, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


async def _await(awaitable):
    return await awaitable


def failure(error_type, message, trace=""):
    return {"ok": False, "error_type": error_type, "error": message, "traceback": trace}


def write_report(report, fd=REPORT_FD):
    try:
        data = json.dumps(report, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, RecursionError, MemoryError) as exc:
        data = json.dumps(failure("invalid_result", "main() must return a JSON-serializable object: %s" % describe(exc)))
    try:
        payload = data.encode("utf-8")
    except UnicodeEncodeError:
        # Results were checked to be valid Unicode; an error message or
        # traceback may still hold lone surrogates, which become U+FFFD
        # rather than bytes that are not UTF-8 (which the executor would
        # refuse as a forged report).
        payload = data.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class Job:
    """What the executor asks for: the script and what comes with it."""

    def __init__(self, script, input=NO_INPUT, stdin=None, files=(), outputs=None, prepare_outputs=False, rlimit_as=None, max_display=0):
        self.script = script
        self.input = input
        self.stdin = stdin
        self.files = files
        self.outputs = outputs
        self.max_display = max_display
        self.prepare_outputs = prepare_outputs
        self.rlimit_as = rlimit_as


def parse_job(data):
    """Decodes the job the executor wrote on fd 3 (see the module docstring).

    The executor has already checked the request; a job that breaks the
    rules here is the executor's fault and ends the harness with an error.
    """
    fields = json.loads(data.decode("utf-8"))
    files = []
    for f in fields.get("files", ()):
        path = f["path"]
        parts = path.split("/")
        if not path or path.startswith("/") or "\0" in path or ".." in parts:
            raise ValueError("job file path %r is not a plain relative path" % path)
        files.append((path, base64.b64decode(f["content"], validate=True)))
    outputs = fields.get("outputs")
    return Job(
        # utf-8-sig semantics: a leading byte order mark is dropped, as
        # Python does for a source file; left in, it would be a syntax error.
        script=fields["script"].removeprefix("\ufeff"),
        input=fields["input"] if "input" in fields else NO_INPUT,
        stdin=fields.get("stdin"),
        files=files,
        outputs=(outputs["max_files"], outputs["max_bytes"]) if outputs else None,
        max_display=outputs.get("max_display", 0) if outputs else 0,
        prepare_outputs=bool(fields.get("prepare_outputs")),
        rlimit_as=fields.get("rlimit_as"),
    )


def read_all(fd):
    """Everything fd holds until its writer closes it."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_job():
    data = read_all(SCRIPT_FD)
    os.close(SCRIPT_FD)
    return parse_job(data)


def prepare(job):
    """Sets the execution's world up before any user code runs.

    Returns a failure report when the request's files cannot be written,
    else None.
    """
    if job.rlimit_as:
        # The script gets rlimit_as of its own on top of what the
        # interpreter holds (numpy and pandas, when it was started ahead),
        # as a cgroup's tightened limit counts. Only ever lowers the limit
        # the jail set: a request may tighten the service's memory cap,
        # never loosen it.
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        wanted = address_space() + job.rlimit_as
        limit = min(x for x in (wanted, soft, hard) if x != resource.RLIM_INFINITY)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    note_workdir()
    for path, content in job.files:
        try:
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except OSError as exc:
            return failure("invalid_request", "files: cannot write '%s': %s" % (path, exc.strerror or exc))
    if job.prepare_outputs:
        try:
            os.makedirs(OUTPUTS_DIR, exist_ok=True)
        except OSError as exc:
            return failure("invalid_request", "files: cannot make the directory '%s': %s" % (OUTPUTS_DIR, exc.strerror or exc))
    if job.stdin is not None:
        # A memory file rather than a pipe: the whole text is there at once,
        # whatever its size, and child processes inherit it as fd 0 too.
        fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
        data = memoryview(job.stdin.encode("utf-8"))
        while data:
            data = data[os.write(fd, data):]
        os.lseek(fd, 0, os.SEEK_SET)
        os.dup2(fd, 0)
        os.close(fd)
    if job.outputs is not None:
        DISPLAY.open(job.max_display, job.outputs[1])
    builtins.display = DISPLAY.show
    if "matplotlib.pyplot" in sys.modules:
        patch_pyplot(sys.modules["matplotlib.pyplot"])
    else:
        sys.meta_path.insert(0, MatplotlibHooks)
    explain_missing_network()
    return None


class MatplotlibHooks:
    """Sees matplotlib's imports go by, to set it up for the jail.

    A finder on sys.meta_path that finds nothing itself. On the import of
    matplotlib it gives matplotlib the font list built at install: matplotlib
    keeps its font list in its cache directory (MPLCONFIGDIR, in this
    execution's private tmpfs) and builds it on first import when it is
    missing, which costs a chart ~0.1 s; the list built at install lies
    read-only in the runtime, and a link to it in the cache directory is
    found instead. It is made only when a script imports matplotlib, so that
    an execution that does not finds its tmpfs empty. On the import of
    matplotlib.pyplot it has the module patched once loaded (patch_pyplot).
    """

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "matplotlib":
            cls.link_fonts()
        elif name == "matplotlib.pyplot":
            sys.meta_path.remove(cls)
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(name, path, target) if find else None
                if spec is not None and spec.loader is not None:
                    spec.loader = PatchingLoader(spec.loader, patch_pyplot)
                    return spec
        return None

    @staticmethod
    def link_fonts():
        cache = os.environ.get("MPLCONFIGDIR")
        built = os.path.join(sys.prefix, "share", "pyexec-matplotlib")
        if not cache:
            return
        try:
            names = os.listdir(built)
            os.makedirs(cache, exist_ok=True)
            for name in names:
                os.symlink(os.path.join(built, name), os.path.join(cache, name))
        except OSError:
            pass  # no list in the runtime, or no room: matplotlib builds its own


class PatchingLoader:
    """A module's own loader, with patch(module) run once it has loaded."""

    def __init__(self, loader, patch):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)  # get_source for tracebacks


def patch_pyplot(pyplot):
    """Makes plt.show() display every open figure, as a notebook does."""

    def show(*args, **kwargs):
        DISPLAY.open_figures()

    pyplot.show = show


class Display:
    """The rich outputs of one execution, in the order produced, within caps.

    Items are {"type", "data", "bytes"}: a PNG's data is base64, text is
    itself; bytes is the decoded size, which counts against the output
    budget shared with the output files. Past a cap nothing more is kept
    and finish() raises OutputProblem naming the cap.
    """

    MAX_TABLE_ROWS = 60
    MAX_TABLE_COLUMNS = 20
    MAX_TEXT_CHARS = 64 * 1024
    MAX_FIGURE_SIDE_PIXELS = 2000
    MAX_FIGURE_DPI = 200

    def __init__(self):
        self.items = []
        self.bytes = 0
        self.max_items = 0
        self.max_bytes = 0
        self.over = None

    def open(self, max_items, max_bytes):
        self.max_items = max_items
        self.max_bytes = max_bytes

    def show(self, *objs):
        """display(obj, ...): shows each object as a notebook would."""
        for obj in objs:
            kind = type(obj)
            module = getattr(kind, "__module__", "") or ""
            if module.startswith("pandas") and kind.__name__ in ("DataFrame", "Series"):
                frame = obj.to_frame() if kind.__name__ == "Series" else obj
                html = frame.to_html(max_rows=self.MAX_TABLE_ROWS, max_cols=self.MAX_TABLE_COLUMNS, escape=True)
                # The header row's inline style is pandas's only one; a page
                # with a strict Content-Security-Policy refuses it. Cells are
                # escaped, so no quote of theirs can match.
                html = _INLINE_STYLE.sub("", html)
                self.add_text("text/html", html)
                self.add_text("text/plain", obj.to_string(max_rows=self.MAX_TABLE_ROWS))
            elif self.is_figure(obj):
                self.add_figure(obj)
            else:
                self.add_text("text/plain", repr(obj))

    @staticmethod
    def is_figure(obj):
        figure = sys.modules.get("matplotlib.figure")
        return figure is not None and isinstance(obj, figure.Figure)

    def add_text(self, mime, text):
        if len(text) > self.MAX_TEXT_CHARS:
            text = text[: self.MAX_TEXT_CHARS] + "\n…"
        self.add(mime, text, len(text.encode("utf-8", "surrogatepass")))

    def add_figure(self, fig):
        """Draws fig as a PNG, its DPI and pixel size bounded, and closes it."""
        import io

        width, height = fig.get_size_inches()
        dpi = min(fig.get_dpi(), self.MAX_FIGURE_DPI)
        side = max(width, height) * dpi
        if side > self.MAX_FIGURE_SIDE_PIXELS:
            dpi *= self.MAX_FIGURE_SIDE_PIXELS / side
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        sys.modules["matplotlib.pyplot"].close(fig)
        png = buf.getvalue()
        self.add("image/png", base64.b64encode(png).decode("ascii"), len(png))

    def add(self, mime, data, size):
        if self.over:
            return
        if len(self.items) >= self.max_items:
            self.over = "more than %d display items" % self.max_items
        elif self.bytes + size > self.max_bytes:
            self.over = "display and output files over %s" % size_text(self.max_bytes)
        else:
            self.items.append({"type": mime, "data": data, "bytes": size})
            self.bytes += size

    def open_figures(self):
        """Displays every figure pyplot still has open, in creation order."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        for number in pyplot.get_fignums():
            self.add_figure(pyplot.figure(number))

    def finish(self):
        """The items, with the figures still open; OutputProblem past a cap."""
        self.open_figures()
        if self.over:
            raise OutputProblem("output_limit", "Output limit exceeded (%s)" % self.over)
        return self.items


_INLINE_STYLE = re.compile(r' style="[^"]*"')
DISPLAY = Display()


def address_space():
    """The bytes of address space this process holds (VmSize)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


def explain_missing_network():
    """Makes a refused socket say why: the sandbox has no network.

    The seccomp filter answers EPERM to every socket family but AF_UNIX;
    on its own that reads as a bare "Operation not permitted".
    """
    import socket

    refused = socket.socket.__init__
    if getattr(refused, "explains_missing_network", False):
        return  # a session's earlier cell set it up

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        try:
            refused(self, family, type, proto, fileno)
        except PermissionError as exc:
            if exc.errno != errno.EPERM:
                raise
            raise PermissionError(errno.EPERM, "Operation not permitted: the sandbox has no network access") from None

    __init__.explains_missing_network = True
    socket.socket.__init__ = __init__


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
        os.write(REPORT_FD, PRELOADED)
    harness_pid = os.getpid()
    job = read_job()
    report = prepare(job) or run(job.script, job.input, job.outputs)
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
        # Closing stdout, stderr and the report first tells the executor at
        # once that the report is whole (end of file on every channel); the
        # process's exit, which tears its address space down before it
        # closes them, ends after the answer. os._exit skips interpreter
        # shutdown (~190 ms with pandas loaded) and any atexit handler or
        # thread the script left behind.
        os.closerange(1, REPORT_FD + 1)
        os._exit(0)


if __name__ == "__main__":
    main()

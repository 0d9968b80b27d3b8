"""pyexec session cells: code run one cell at a time in one global namespace,
like a notebook (SPEC §11).

A cell's answer follows harness.py's report: {"ok": true, "result": <value>}
where the value is the cell's last expression under the JSON rules of
main()'s result (None when the cell ends with a statement), or
{"ok": false, "error_type", "error", "traceback"}. A last expression whose
value has no JSON form (a DataFrame, a figure, any object) is never an error:
the answer carries its text form, repr() capped at MAX_TEXT_CHARS, and
"result_text": true marks it as such. An exception answers error_type
"exception" with the traceback of the cells' own frames; the namespace keeps
everything the cell bound before it raised.

Protocol (the executor's side is executor/internal/jail/session.go):
  fd 3  the session's control socket (SOCK_SEQPACKET). Each message b"cell"
        carries four descriptors (SCM_RIGHTS): the cell's job (read end; the
        JSON object of harness.py's fd 3, with the cell's code as "script"),
        its stdout, its stderr and its report (write ends). The session reads
        the job to its end, puts stdout and stderr on fds 1 and 2 and stdin
        (the job's, or /dev/null) on fd 0, writes the job's files, runs the
        cell and writes exactly one report on the report descriptor. Then
        fds 0, 1 and 2 point at /dev/null again, every descriptor of the
        cell is closed, and the session sends b"done" on the control socket:
        a process the cell started holds copies of the cell's descriptors,
        so the end of its channels cannot tell the executor the cell is over.
        End of file on the control socket ends the session's process.

Standard library only, like harness.py, whose JSON rules and limits it uses.
"""

import ast
import linecache
import os
import socket
import sys
import traceback
import types

import harness

MODULE_NAME = "__main__"
CELL_FILENAME_PREFIX = "<cell "
MAX_TEXT_CHARS = 64 * 1024
CELL_DONE = b"done"


class Session:
    """One session's namespace and the count of cells run in it."""

    def __init__(self):
        module = types.ModuleType(MODULE_NAME)
        self.namespace = module.__dict__
        self.namespace["__builtins__"] = __builtins__
        self.cells = 0

    def run_cell(self, source):
        """Runs one cell and returns its report as a dict."""
        self.cells += 1
        filename = "%s%d>" % (CELL_FILENAME_PREFIX, self.cells)
        try:
            body, last = compile_cell(source, filename)
        except SyntaxError as exc:
            return harness.failure("syntax_error", "%s: %s (line %s)" % (type(exc).__name__, exc.msg, exc.lineno))
        except (RecursionError, ValueError) as exc:
            return harness.failure("syntax_error", "SyntaxError: %s" % harness.describe(exc))
        except MemoryError:
            return harness.failure("memory_limit", "")
        # Tracebacks of this cell, now or from a function it defines called
        # in a later cell, show its source lines.
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
        value = None
        try:
            exec(body, self.namespace)
            if last is not None:
                value = eval(last, self.namespace)
        except SystemExit as exc:
            report = harness.failure("exited", "The cell exited with code %d" % harness.exit_code(exc))
            report["exit_code"] = harness.exit_code(exc)
            return report
        except MemoryError:
            return harness.failure("memory_limit", "")
        except BaseException as exc:  # noqa: BLE001 - every user failure becomes a report
            return harness.failure("exception", harness.describe(exc), cell_traceback(exc))
        return answer(value)


def compile_cell(source, filename):
    """Compiles a cell as its statements and, when it ends with an expression,
    that expression on its own ('eval'), as IPython does; the second is None
    otherwise."""
    tree = ast.parse(source, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    return compile(tree, filename, "exec"), last


def answer(value):
    """The report of a cell whose last expression is value."""
    if hasattr(sys, "set_int_max_str_digits"):
        # to_json_value bounds integers; repr of a huge one must not raise.
        sys.set_int_max_str_digits(0)
    try:
        return {"ok": True, "result": harness.to_json_value(value)}
    except MemoryError:
        return harness.failure("memory_limit", "")
    except BaseException:  # noqa: BLE001 - no JSON form: the text form answers
        pass
    try:
        text = repr(value)
    except MemoryError:
        return harness.failure("memory_limit", "")
    except BaseException as exc:  # noqa: BLE001 - a user __repr__ that raises
        text = "<%s object; repr() failed: %s>" % (type(value).__name__, harness.describe(exc))
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + "..."
    return {"ok": True, "result": text, "result_text": True}


def cell_traceback(exc):
    """The exception's traceback with only the cells' own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(CELL_FILENAME_PREFIX)]
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(traceback.format_list(frames))
    lines.extend(line[: harness.MAX_MESSAGE_CHARS] for line in traceback.format_exception_only(type(exc), exc))
    text = "".join(lines)
    if len(text) > harness.MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-harness.MAX_TRACEBACK_CHARS :]
    return text


def serve(control_fd=harness.SCRIPT_FD):
    """Runs cells as the control socket asks, until it is closed."""
    control = socket.socket(fileno=control_fd)
    session = Session()
    session_pid = os.getpid()
    null = os.open(os.devnull, os.O_RDWR)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 16, 4)
        except OSError:
            break
        if not msg:
            break
        if msg != b"cell" or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        job_fd, stdout_fd, stderr_fd, report_fd = fds
        try:
            report = run_job(session, job_fd, stdout_fd, stderr_fd)
        finally:
            harness.flush_streams()
        if os.getpid() != session_pid:
            # A process the cell forked came back here: only the session's
            # own process serves and reports.
            os._exit(harness.child_status(report))
        report.pop("exit_code", None)
        try:
            harness.write_report(report, report_fd)
        finally:
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            for fd in (job_fd, stdout_fd, stderr_fd, report_fd):
                os.close(fd)
        # The cell is done: processes it left may hold copies of its
        # descriptors, so their end of file would not say so.
        try:
            control.send(CELL_DONE)
        except OSError:
            break
    os._exit(0)


def run_job(session, job_fd, stdout_fd, stderr_fd):
    """Reads one cell's job, sets its world up and runs it."""
    data = harness.read_all(job_fd)
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    try:
        job = harness.parse_job(data)
    except (ValueError, KeyError, TypeError) as exc:
        return harness.failure("invalid_request", "cell job: %s" % exc)
    job.rlimit_as = None  # set once, for the whole session
    # Each cell's rich outputs are its own.
    harness.DISPLAY = harness.Display()
    failed = harness.prepare(job)
    if failed:
        return failed
    report = session.run_cell(job.script)
    if report["ok"] and job.outputs is not None:
        max_files, max_bytes = job.outputs
        try:
            shown = harness.DISPLAY.finish()
            files = harness.collect_outputs(max_files, max_bytes, harness.DISPLAY.bytes)
        except harness.OutputProblem as exc:
            return harness.failure(exc.error_type, str(exc))
        except MemoryError:
            return harness.failure("memory_limit", "")
        except BaseException as exc:  # noqa: BLE001 - a figure that cannot be drawn
            return harness.failure("exception", "displaying a figure: %s" % harness.describe(exc))
        if files:
            report["files"] = files
        if shown:
            report["display"] = shown
    return report


if __name__ == "__main__":
    serve()

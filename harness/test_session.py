"""Unit tests of session.py, run in-process with the runtime's interpreter.

The cells are harmless and run in this process, each test in a session of
its own.
"""

import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

import session

try:
    import pandas
except ImportError:  # the runtime has pandas; a bare interpreter may not
    pandas = None


class CellTest(unittest.TestCase):
    def setUp(self):
        self.session = session.Session()

    def run_cell(self, source):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report = self.session.run_cell(source)
        self.stdout = out.getvalue()
        return report

    def test_state_carries_across_cells(self):
        self.assertEqual(self.run_cell("x = 41\nimport math"), {"ok": True, "result": None})
        self.assertEqual(self.run_cell("def inc(v):\n    return v + 1"), {"ok": True, "result": None})
        self.assertEqual(self.run_cell("inc(x)"), {"ok": True, "result": 42})
        self.assertEqual(self.run_cell("math.floor(2.5)"), {"ok": True, "result": 2})
        self.assertEqual(self.session.cells, 4)

    def test_last_expression_only_is_the_result(self):
        self.assertEqual(self.run_cell("1\nprint('hi')\n[1, 'a', None]"), {"ok": True, "result": [1, "a", None]})
        self.assertEqual(self.stdout, "hi\n")
        self.assertEqual(self.run_cell("y = 3"), {"ok": True, "result": None})
        self.assertEqual(self.run_cell(""), {"ok": True, "result": None})

    def test_value_without_json_form_answers_its_text(self):
        report = self.run_cell("class Thing:\n    def __repr__(self):\n        return 'a thing'\nThing()")
        self.assertEqual(report, {"ok": True, "result": "a thing", "result_text": True})
        report = self.run_cell("{1, 2}")
        self.assertEqual(report, {"ok": True, "result": "{1, 2}", "result_text": True})
        report = self.run_cell("float('nan')")
        self.assertEqual(report, {"ok": True, "result": "nan", "result_text": True})

    def test_repr_that_raises_is_still_an_answer(self):
        report = self.run_cell("class Bad:\n    def __repr__(self):\n        raise ValueError('no')\nBad()")
        self.assertTrue(report["ok"])
        self.assertTrue(report["result_text"])
        self.assertIn("repr() failed: ValueError: no", report["result"])

    def test_long_text_is_capped(self):
        report = self.run_cell("{i for i in range(100000)}")
        self.assertTrue(report["result_text"])
        self.assertEqual(len(report["result"]), session.MAX_TEXT_CHARS + 3)

    @unittest.skipIf(pandas is None, "pandas is not installed")
    def test_dataframe_is_text_and_lives_on(self):
        self.run_cell("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3], 'b': [4.0, 5.5, 6.0]})")
        report = self.run_cell("df")
        self.assertTrue(report["ok"])
        self.assertTrue(report["result_text"])
        self.assertEqual(report["result"], repr(pandas.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.5, 6.0]})))
        self.assertEqual(self.run_cell("int(df['a'].sum())"), {"ok": True, "result": 6})

    def test_exception_keeps_the_namespace(self):
        report = self.run_cell("z = 5\ndef boom():\n    raise KeyError('k')\nboom()")
        self.assertFalse(report["ok"])
        self.assertEqual(report["error_type"], "exception")
        self.assertEqual(report["error"], "KeyError: 'k'")
        self.assertIn('File "<cell 1>", line 3, in boom', report["traceback"])
        self.assertNotIn("session.py", report["traceback"])
        self.assertEqual(self.run_cell("z"), {"ok": True, "result": 5})
        # A function of an earlier cell shows that cell's lines.
        report = self.run_cell("boom()")
        self.assertIn('File "<cell 1>", line 3, in boom', report["traceback"])
        self.assertIn("raise KeyError('k')", report["traceback"])

    def test_syntax_error_runs_nothing(self):
        report = self.run_cell("q = 1\nq = (")
        self.assertEqual(report["error_type"], "syntax_error")
        self.assertNotIn("q", self.session.namespace)
        self.assertEqual(self.run_cell("1 + 1"), {"ok": True, "result": 2})

    def test_exit_is_reported(self):
        report = self.run_cell("import sys\nsys.exit(3)")
        self.assertEqual(report["error_type"], "exited")
        self.assertEqual(report["exit_code"], 3)

    def test_files_in_the_working_directory_persist(self):
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                self.run_cell("with open('data.csv', 'w') as f:\n    f.write('a\\n1\\n2\\n')")
                self.assertEqual(self.run_cell("with open('data.csv') as f:\n    text = f.read()\ntext.split()"), {"ok": True, "result": ["a", "1", "2"]})
            finally:
                os.chdir(cwd)

    def test_sessions_do_not_share_a_namespace(self):
        self.run_cell("secret = 1")
        other = session.Session()
        report = other.run_cell("secret")
        self.assertEqual(report["error_type"], "exception")
        self.assertEqual(report["error"], "NameError: name 'secret' is not defined")

    def test_await_at_top_level_is_a_syntax_error_not_a_crash(self):
        report = self.run_cell("await x")
        self.assertFalse(report["ok"])
        self.assertEqual(report["error_type"], "syntax_error")


class ServeTest(unittest.TestCase):
    """session.py as its own process, driven over its control socket."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", "import session; session.serve(%d)" % theirs.fileno()],
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            cwd=self.tmp.name,
            env=dict(os.environ, PYTHONPATH=here),
        )
        theirs.close()
        self.control = ours

    def tearDown(self):
        self.control.close()
        self.assertEqual(self.proc.wait(timeout=10), 0)
        self.tmp.cleanup()

    def cell(self, job):
        """Sends one cell; returns (report, stdout) once every channel has ended."""
        job_r, job_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rep_r, rep_w = os.pipe()
        socket.send_fds(self.control, [b"cell"], [job_r, out_w, err_w, rep_w])
        for fd in (job_r, out_w, err_w, rep_w):
            os.close(fd)
        with os.fdopen(job_w, "wb") as f:
            f.write(json.dumps(job).encode())
        channels = {}

        def read(name, fd):
            with os.fdopen(fd, "rb") as f:
                channels[name] = f.read()

        readers = [threading.Thread(target=read, args=(n, fd)) for n, fd in (("out", out_r), ("err", err_r), ("rep", rep_r))]
        for t in readers:
            t.start()
        for t in readers:
            t.join(timeout=20)
            self.assertFalse(t.is_alive(), "a channel of the cell did not end")
        return json.loads(channels["rep"]), channels["out"].decode()

    def test_cells_share_state_files_and_stdin(self):
        content = base64.b64encode(b"a,b\n1,2\n3,4\n").decode()
        report, out = self.cell({"script": "rows = open('in.csv').read().split()\nprint('loaded')", "files": [{"path": "in.csv", "content": content}]})
        self.assertEqual(report, {"ok": True, "result": None})
        self.assertEqual(out, "loaded\n")
        report, out = self.cell({"script": "import sys\nline = sys.stdin.read()\nprint(line.upper())\nrows + [line]", "stdin": "hey"})
        self.assertEqual(report, {"ok": True, "result": ["a,b", "1,2", "3,4", "hey"]})
        self.assertEqual(out, "HEY\n")
        report, _ = self.cell({"script": "import sys\nsys.stdin.read()"})
        self.assertEqual(report, {"ok": True, "result": ""})

    def test_exception_then_state_and_outputs(self):
        report, _ = self.cell({"script": "n = 7\n1 / 0"})
        self.assertEqual(report["error_type"], "exception")
        self.assertIn("ZeroDivisionError", report["traceback"])
        job = {"script": "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/n.txt', 'w').write(str(n))\nn", "outputs": {"max_files": 4, "max_bytes": 1000}}
        report, _ = self.cell(job)
        self.assertEqual(report["result"], 7)
        self.assertEqual([(f["path"], base64.b64decode(f["content"])) for f in report["files"]], [("outputs/n.txt", b"7")])

    def test_a_thread_left_printing_does_not_hold_the_cell(self):
        script = "import threading, time\ndef spin():\n    while True:\n        print('tick')\n        time.sleep(0.01)\nthreading.Thread(target=spin, daemon=True).start()\ntime.sleep(0.05)\n'started'"
        report, out = self.cell({"script": script})
        self.assertEqual(report, {"ok": True, "result": "started"})
        self.assertIn("tick", out)
        report, _ = self.cell({"script": "threading.active_count()"})
        self.assertEqual(report, {"ok": True, "result": 2})

    def test_a_forked_child_does_not_report(self):
        report, out = self.cell({"script": "import os\npid = os.fork()\nif pid == 0:\n    print('child')\nelse:\n    os.waitpid(pid, 0)\npid > 0"})
        self.assertEqual(report, {"ok": True, "result": True})
        self.assertEqual(out, "child\n")
        report, _ = self.cell({"script": "pid > 0"})
        self.assertEqual(report, {"ok": True, "result": True})

    def test_bad_job_is_refused_and_the_session_lives_on(self):
        report, _ = self.cell({"no_script": 1})
        self.assertEqual(report["error_type"], "invalid_request")
        report, _ = self.cell({"script": "2 * 21"})
        self.assertEqual(report, {"ok": True, "result": 42})


if __name__ == "__main__":
    unittest.main()

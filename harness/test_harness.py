"""Unit tests of harness.py, run in-process with the runtime's interpreter.

The harness normally runs inside the jail; here its functions are called
directly. run() executes the scripts in this process, so the scripts are
harmless and their stdout is captured.
"""

import ast
import collections
import contextlib
import enum
import io
import json
import os
import resource
import sys
import tempfile
import unittest

import harness

try:
    import numpy
except ImportError:  # the runtime has numpy; a bare interpreter may not
    numpy = None
try:
    import pandas
except ImportError:
    pandas = None


def run_quietly(source):
    """run(source) with the script's stdout captured: (report, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = harness.run(source)
    return report, out.getvalue()


class HasTopLevelMainTest(unittest.TestCase):
    def check(self, source, want):
        got = harness.has_top_level_main(ast.parse(source))
        self.assertEqual(got, want, "has_top_level_main(%r) = %s, want %s" % (source, got, want))

    def test_bindings_of_main_at_the_top_level(self):
        for source in [
            "def main():\n    return 1\n",
            "async def main():\n    return 1\n",
            "class main:\n    pass\n",
            "main = lambda: 1\n",
            "main: object = print\n",
            "main, other = print, len\n",
            "[main] = [print]\n",
            "main = other = print\n",
            "import main\n",
            "import main.sub\n",
            "from os import getcwd as main\n",
            "from mod import main\n",
            "import os.path as main\n",
            "if True:\n    def main():\n        return 1\n",
            "try:\n    pass\nexcept Exception:\n    pass\nelse:\n    main = print\n",
            "with open('f') as main:\n    pass\n",
            "for main in [print]:\n    pass\n",
            "while False:\n    main = print\n",
            "try:\n    pass\nexcept Exception as main:\n    pass\n",
            "match 1:\n    case main:\n        pass\n",
            "(main := print)\n",
            "xs = [(main := x) for x in [print]]\n",
        ]:
            with self.subTest(source=source):
                self.check(source, True)

    def test_what_does_not_bind_main_in_the_module(self):
        for source in [
            "",
            "def run():\n    return 1\n",
            "main()\n",
            "print(main)\n",
            "del main\n",
            "def outer():\n    def main():\n        return 1\n",
            "def outer():\n    global main\n    main = 1\n",
            "class A:\n    def main(self):\n        return 1\n",
            "class A:\n    main = 1\n",
            "f = lambda main: main\n",
            "f = lambda: (main := 1)\n",
            "xs = [main for main in range(3)]\n",
            "xs = {main for main in range(3)}\n",
            "xs = {main: 1 for main in range(3)}\n",
            "xs = (main for main in range(3))\n",
            "xs = [[main for main in y] for y in [[1]]]\n",
            "main: object\n",
            "import mainly\n",
            "from mod import main as other\n",
            "obj.main = print\n",
            "d['main'] = print\n",
        ]:
            with self.subTest(source=source):
                self.check(source, False)


class ToJsonValueTest(unittest.TestCase):
    def assertConverts(self, value, want):
        got = harness.to_json_value(value)
        self.assertEqual(json.dumps(got, allow_nan=False), json.dumps(want, allow_nan=False))

    def assertInvalid(self, value, why, path):
        with self.assertRaises(harness.InvalidResult) as caught:
            harness.to_json_value(value)
        self.assertIn(why, caught.exception.why)
        self.assertEqual(caught.exception.path, path)

    def test_json_values_stay_as_they_are(self):
        for value in [None, True, False, 0, -7, 1.5, "text", "", [], {}, {"a": [1, {"b": None}]}]:
            with self.subTest(value=value):
                self.assertConverts(value, value)

    def test_big_integers_stay_exact(self):
        big = 2**64 + 1
        self.assertEqual(json.dumps(harness.to_json_value([big])), "[18446744073709551617]")
        self.assertEqual(harness.to_json_value(-(2**100)), -(2**100))

    def test_containers_and_subclasses_become_plain_json(self):
        Point = collections.namedtuple("Point", "x y")

        class Color(enum.IntEnum):
            RED = 1

        class Text(str):
            pass

        tests = [
            ((1, (2, 3)), [1, [2, 3]]),
            (Point(1, 2), [1, 2]),
            (collections.OrderedDict([("b", 1), ("a", 2)]), {"b": 1, "a": 2}),
            (collections.defaultdict(list, {"k": (1,)}), {"k": [1]}),
            (Color.RED, 1),
            (Text("t"), "t"),
            ({1: "int", 2.5: "float", False: "bool", None: "none"}, {"1": "int", "2.5": "float", "false": "bool", "null": "none"}),
        ]
        for value, want in tests:
            with self.subTest(value=value):
                self.assertConverts(value, want)
        # bool stays bool, never becomes 1.
        self.assertIs(harness.to_json_value([True])[0], True)

    def test_values_that_are_not_json_name_their_path(self):
        class Thing:
            pass

        circular = []
        circular.append(circular)
        tests = [
            (float("nan"), "NaN is not allowed", "result"),
            ({"stats": [1, 2, float("nan")]}, "NaN is not allowed", "result['stats'][2]"),
            ([1, float("inf")], "Infinity is not allowed", "result[1]"),
            ({"a": {"b": -float("inf")}}, "Infinity is not allowed", "result['a']['b']"),
            ({1, 2}, "set is not JSON serializable", "result"),
            ({"x": frozenset()}, "frozenset is not JSON serializable", "result['x']"),
            ([b"raw"], "bytes is not JSON serializable", "result[0]"),
            ({"t": Thing()}, "Thing is not JSON serializable", "result['t']"),
            (1j, "complex is not JSON serializable", "result"),
            ({(1, 2): "pair"}, "dict key of type tuple is not allowed", "result"),
            ({float("nan"): 1}, "NaN is not allowed", "result"),
            (circular, "circular reference", "result[0]"),
            (["\ud800"], "lone surrogate", "result[0]"),
            ({"\udc80": 1}, "lone surrogate", "result"),
            ([10**100001], "digits", "result[0]"),
        ]
        for value, why, path in tests:
            with self.subTest(why=why, path=path):
                self.assertInvalid(value, why, path)

    def test_deep_nesting_is_invalid_not_a_crash(self):
        value = []
        for _ in range(harness.MAX_RESULT_DEPTH + 10):
            value = [value]
        with self.assertRaises(harness.InvalidResult) as caught:
            harness.to_json_value(value)
        self.assertIn("nested more than", caught.exception.why)

    def test_shared_but_not_circular_values_are_fine(self):
        shared = [1, 2]
        self.assertConverts({"a": shared, "b": shared}, {"a": [1, 2], "b": [1, 2]})

    @unittest.skipIf(numpy is None, "numpy is not installed in this interpreter")
    def test_numpy_values_become_numbers_and_lists(self):
        np = numpy
        tests = [
            (np.int64(7), 7),
            (np.uint64(2**64 - 1), 2**64 - 1),
            (np.float32(0.25), 0.25),
            (np.bool_(True), True),
            (np.arange(6).reshape(2, 3), [[0, 1, 2], [3, 4, 5]]),
            ({"v": np.array([0.5, 1.5])}, {"v": [0.5, 1.5]}),
            (np.array(3.0), 3.0),
        ]
        for value, want in tests:
            with self.subTest(value=repr(value)):
                self.assertConverts(value, want)
        self.assertInvalid({"v": np.array([1.0, np.nan])}, "NaN is not allowed", "result['v'][1]")
        self.assertInvalid([np.datetime64("2020-01-01")], "numpy datetime64 is not JSON serializable", "result[0]")

    @unittest.skipIf(pandas is None, "pandas is not installed in this interpreter")
    def test_pandas_objects_are_invalid_with_a_hint(self):
        df = pandas.DataFrame({"a": [1]})
        self.assertInvalid({"df": df}, 'use df.to_dict(orient="records")', "result['df']")
        self.assertInvalid(df["a"], "use series.tolist()", "result")


class UserTracebackTest(unittest.TestCase):
    def test_only_the_scripts_frames_are_shown(self):
        source = "def inner():\n    raise ValueError('deep')\n\ndef main():\n    inner()\n"
        namespace = {}
        exec(compile(source, harness.SCRIPT_FILENAME, "exec"), namespace)
        try:
            namespace["main"]()  # this file's frame sits above the script's
        except ValueError as exc:
            text = harness.user_traceback(exc)
        self.assertTrue(text.startswith("Traceback (most recent call last):\n"), text)
        self.assertIn('File "<script>", line 5, in main', text)
        self.assertIn('File "<script>", line 2, in inner', text)
        self.assertTrue(text.rstrip().endswith("ValueError: deep"), text)
        self.assertNotIn(__file__, text)
        self.assertNotIn("test_harness", text)


class DescribeTest(unittest.TestCase):
    def test_type_and_message(self):
        self.assertEqual(harness.describe(ValueError("bad")), "ValueError: bad")
        self.assertEqual(harness.describe(KeyboardInterrupt()), "KeyboardInterrupt")

    def test_an_unprintable_exception(self):
        class Odd(Exception):
            def __str__(self):
                raise RuntimeError("no")

        self.assertEqual(harness.describe(Odd()), "Odd: <exception str() failed>")

    def test_a_long_message_is_capped(self):
        self.assertEqual(len(harness.describe(ValueError("x" * 100000))), harness.MAX_MESSAGE_CHARS)


class RunTest(unittest.TestCase):
    def test_a_returned_value(self):
        report, out = run_quietly("print('hi')\n\ndef main():\n    print('in main')\n    return {'answer': 2 + 2}\n")
        self.assertEqual(report, {"ok": True, "result": {"answer": 4}})
        self.assertEqual(out, "hi\nin main\n")

    def test_the_main_guard_does_not_fire(self):
        report, out = run_quietly("def main():\n    print('main')\n    return __name__\n\nif __name__ == '__main__':\n    main()\n")
        self.assertEqual(report, {"ok": True, "result": harness.MODULE_NAME})
        self.assertEqual(out, "main\n")

    def test_async_main_is_awaited(self):
        report, _ = run_quietly("import asyncio\n\nasync def main():\n    await asyncio.sleep(0)\n    return 'awaited'\n")
        self.assertEqual(report, {"ok": True, "result": "awaited"})

    def test_failures(self):
        tests = [
            ("def run():\n    return 1\n", "no_main", "", ""),
            ("print('ran')\nmain = None\nif main is None:\n    del main\n", "no_main", "", "ran\n"),
            ("def main(:\n    return 1\n", "syntax_error", "SyntaxError: ", ""),
            ("def main():\n  x = 1\n    return x\n", "syntax_error", "IndentationError: unexpected indent (line 3)", ""),
            ("def main():\n    raise ValueError('boom')\n", "exception", "ValueError: boom", ""),
            ("x = 1 / 0\n\ndef main():\n    return x\n", "exception", "ZeroDivisionError: division by zero", ""),
            ("def main():\n    return input()\n", "exception", "EOFError", ""),
            ("def main():\n    return {'a': [float('nan')]}\n",
             "invalid_result", "main() must return a JSON-serializable object: NaN is not allowed at result['a'][0]", ""),
            ("import sys\n\ndef main():\n    sys.exit(3)\n", "exited", "Script exited with code 3 before main() returned", ""),
            ("import sys\n\ndef main():\n    sys.exit('message')\n", "exited", "Script exited with code 1 before main() returned", ""),
            ("import sys\nsys.exit()\n\ndef main():\n    return 1\n", "exited", "Script exited with code 0 before main() returned", ""),
            ("def main():\n    raise MemoryError()\n", "memory_limit", "", ""),
        ]
        for source, error_type, message, want_out in tests:
            with self.subTest(source=source):
                # input() must see an empty stdin, as in the jail.
                with contextlib.redirect_stderr(io.StringIO()), _empty_stdin():
                    report, out = run_quietly(source)
                self.assertFalse(report["ok"], report)
                self.assertEqual(report["error_type"], error_type, report)
                self.assertTrue(report["error"].startswith(message), report)
                self.assertEqual(out, want_out)

    def test_an_exception_report_has_a_user_traceback(self):
        report, _ = run_quietly("def main():\n    raise KeyError('k')\n")
        self.assertIn('File "<script>", line 2, in main', report["traceback"])
        self.assertNotIn("harness.py", report["traceback"])

    def test_a_syntax_error_names_its_line(self):
        report, _ = run_quietly("x = 1\n\ndef main():\n    return [1, 2\n")
        self.assertEqual(report["error_type"], "syntax_error")
        self.assertRegex(report["error"], r"^SyntaxError: .* \(line 4\)$")

    def test_a_large_integer_result_is_exact(self):
        report, _ = run_quietly("import math\n\ndef main():\n    return math.factorial(2000)\n")
        self.assertTrue(report["ok"], report)
        data = json.dumps(report, allow_nan=False)
        self.assertIn(str(__import__("math").factorial(2000)), data)

    def test_a_forked_child_that_exits_reports_nothing(self):
        # exit_code travels from run() to main(); main() removes it before
        # the report is written.
        report, _ = run_quietly("import sys\n\ndef main():\n    sys.exit(300)\n")
        self.assertEqual(report["exit_code"], 300)
        self.assertEqual(harness.child_status(report), 300 & 0xFF)
        self.assertEqual(harness.child_status({"ok": True, "result": 1}), 0)
        self.assertEqual(harness.child_status(harness.failure("exception", "E: x")), 1)


def run_in(directory, source, **kwargs):
    """run(source, ...) with directory as the working directory, quietly."""
    saved = os.getcwd()
    os.chdir(directory)
    try:
        return run_quietly_with(source, **kwargs)
    finally:
        os.chdir(saved)


def run_quietly_with(source, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        return harness.run(source, **kwargs)


class InputTest(unittest.TestCase):
    def test_main_receives_the_input_exactly(self):
        value = {"n": 2**80, "nested": [1, {"x": None}], "f": 0.1}
        report = run_quietly_with("def main(data):\n    return data\n", input=value)
        self.assertEqual(report, {"ok": True, "result": value})

    def test_null_is_an_input_like_any_other(self):
        report = run_quietly_with("def main(data):\n    return data is None\n", input=None)
        self.assertEqual(report, {"ok": True, "result": True})

    def test_signatures_that_do_not_fit_are_invalid_requests_naming_main(self):
        for source, has_input, want in [
            ("def main():\n    return 1\n", True, "main() cannot take the request's 'input'"),
            ("def main(a, b):\n    return 1\n", True, "main(a, b) cannot take the request's 'input'"),
            ("def main(data):\n    return 1\n", False, "main(data) needs an argument, but the request has no 'input'"),
            ("async def main(*, key):\n    return 1\n", False, "main(*, key) needs an argument"),
        ]:
            kwargs = {"input": {"x": 1}} if has_input else {}
            report = run_quietly_with(source, **kwargs)
            self.assertEqual(report["error_type"], "invalid_request", (source, report))
            self.assertTrue(report["error"].startswith(want), (source, report["error"]))

    def test_signatures_that_fit_run(self):
        for source, kwargs in [
            ("def main(data=None):\n    return 1\n", {}),
            ("def main(data=None):\n    return 1\n", {"input": 1}),
            ("def main(*args):\n    return 1\n", {"input": 1}),
            ("main = len\n", {"input": [1]}),
            ("class main:\n    def __init__(self, data):\n        pass\n    def __iter__(self):\n        return iter([])\n", {"input": 1}),
        ]:
            report = run_quietly_with(source, **kwargs)
            self.assertNotEqual(report.get("error_type"), "invalid_request", (source, report))

    def test_a_main_that_is_not_callable_says_so(self):
        report = run_quietly_with("main = 5\n")
        self.assertEqual(report["error_type"], "exception")
        self.assertEqual(report["error"], "main is not callable: int")


class OutputsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        # rm, not shutil.rmtree, which recurses once per level of a deep tree.
        self.addCleanup(lambda: __import__("subprocess").run(["rm", "-rf", "--", self.dir], check=True))

    def test_regular_files_come_back_sorted_with_their_sizes(self):
        source = (
            "import os\n"
            "def main():\n"
            "    os.makedirs('outputs/sub')\n"
            "    open('outputs/b.csv', 'w').write('x\\n1\\n')\n"
            "    open('outputs/sub/a.bin', 'wb').write(bytes(range(256)))\n"
            "    open('outputs/a.txt', 'w').write('')\n"
            "    return 1\n"
        )
        report = run_in(self.dir, source, outputs=(100, 1 << 20))
        self.assertTrue(report["ok"], report)
        self.assertEqual([f["path"] for f in report["files"]], ["outputs/a.txt", "outputs/b.csv", "outputs/sub/a.bin"])
        self.assertEqual([f["bytes"] for f in report["files"]], [0, 4, 256])
        self.assertEqual(__import__("base64").b64decode(report["files"][2]["content"]), bytes(range(256)))

    def test_no_outputs_means_no_files_key(self):
        report = run_in(self.dir, "def main():\n    return 1\n", outputs=(100, 1 << 20))
        self.assertEqual(report, {"ok": True, "result": 1})

    def test_symlinks_and_fifos_are_never_followed_or_returned(self):
        secret = os.path.join(self.dir, "secret")
        with open(secret, "w") as f:
            f.write("secret")
        source = (
            "import os\n"
            "def main():\n"
            "    os.makedirs('outputs')\n"
            "    os.symlink(%r, 'outputs/link')\n"
            "    os.symlink('/etc', 'outputs/dirlink')\n"
            "    os.mkfifo('outputs/fifo')\n"
            "    open('outputs/real', 'w').write('ok')\n"
            "    return 1\n"
        ) % secret
        report = run_in(self.dir, source, outputs=(100, 1 << 20))
        self.assertEqual([f["path"] for f in report["files"]], ["outputs/real"])

    def test_a_symlinked_outputs_or_subdirectory_is_never_followed(self):
        elsewhere = os.path.join(self.dir, "elsewhere")
        os.makedirs(elsewhere)
        with open(os.path.join(elsewhere, "secret"), "w") as f:
            f.write("secret")
        linked_outputs = "import os\ndef main():\n    os.symlink(%r, 'outputs')\n    return 1\n" % elsewhere
        report = run_in(self.dir, linked_outputs, outputs=(100, 1 << 20))
        self.assertEqual(report, {"ok": True, "result": 1})
        os.remove(os.path.join(self.dir, "outputs"))
        linked_subdirectory = (
            "import os\n"
            "def main():\n"
            "    os.makedirs('outputs')\n"
            "    os.symlink(%r, 'outputs/sub')\n"
            "    open('outputs/real', 'w').write('ok')\n"
            "    return 1\n"
        ) % elsewhere
        report = run_in(self.dir, linked_subdirectory, outputs=(100, 1 << 20))
        self.assertEqual([f["path"] for f in report["files"]], ["outputs/real"])

    def test_an_outputs_that_is_a_file_gives_no_files(self):
        report = run_in(self.dir, "def main():\n    open('outputs', 'w').write('x')\n    return 1\n", outputs=(100, 1 << 20))
        self.assertEqual(report, {"ok": True, "result": 1})

    def test_a_tree_deeper_than_the_descriptor_limit_is_read(self):
        # The walk holds two descriptors whatever the depth: 1,100 levels
        # under a limit of 64.
        source = (
            "import os, resource\n"
            "def main():\n"
            "    os.makedirs('outputs')\n"
            "    os.chdir('outputs')\n"
            "    for _ in range(1100):\n"
            "        os.mkdir('d')\n"
            "        os.chdir('d')\n"
            "    open('f', 'w').write('deep')\n"
            "    os.chdir(%r)\n"
            "    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
            "    return 1\n"
        ) % self.dir
        saved = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, saved)
        report = run_in(self.dir, source, outputs=(100, 1 << 20))
        self.assertEqual([f["path"] for f in report["files"]], ["outputs/" + "d/" * 1100 + "f"])

    def test_a_path_over_the_limit_is_refused_by_name(self):
        source = (
            "import os\n"
            "def main():\n"
            "    os.makedirs('outputs')\n"
            "    os.chdir('outputs')\n"
            "    for _ in range(20):\n"
            "        os.mkdir('d' * 250)\n"
            "        os.chdir('d' * 250)\n"
            "    open('f', 'w').write('far')\n"
            "    os.chdir(%r)\n"
            "    return 1\n"
        ) % self.dir
        report = run_in(self.dir, source, outputs=(100, 1 << 20))
        self.assertEqual(report["error_type"], "invalid_result", report)
        self.assertTrue(report["error"].startswith("Output file path is longer than 4095 bytes: outputs/ddd"), report["error"])

    def test_deep_directories_are_read(self):
        source = (
            "import os\n"
            "def main():\n"
            "    deep = 'outputs/' + '/'.join(['d'] * 50)\n"
            "    os.makedirs(deep)\n"
            "    open(deep + '/f', 'w').write('deep')\n"
            "    open('outputs/d/g', 'w').write('g')\n"
            "    return 1\n"
        )
        report = run_in(self.dir, source, outputs=(100, 1 << 20))
        self.assertEqual([f["path"] for f in report["files"]], ["outputs/" + "/".join(["d"] * 50) + "/f", "outputs/d/g"])

    def run_from_noted(self, workdir, source):
        """run(source) the way an execution runs: workdir noted before main()."""
        saved = os.getcwd()
        os.chdir(workdir)
        self.addCleanup(setattr, harness, "WORKDIR", None)
        try:
            harness.note_workdir()
            return run_quietly_with(source, outputs=(100, 1 << 20))
        finally:
            os.chdir(saved)

    def test_outputs_come_from_the_noted_working_directory_wherever_main_went(self):
        elsewhere = os.path.join(self.dir, "elsewhere")
        source = (
            "import os\n"
            "def main():\n"
            "    os.makedirs('outputs')\n"
            "    open('outputs/mine.txt', 'w').write('m')\n"
            "    os.makedirs(%r)\n"
            "    os.chdir(%r)\n"
            "    open('outputs/elsewhere.txt', 'w').write('e')\n"
            "    os.chdir('/')\n"
            "    return 1\n"
        ) % (os.path.join(elsewhere, "outputs"), elsewhere)
        work = os.path.join(self.dir, "work")
        os.mkdir(work)
        report = self.run_from_noted(work, source)
        self.assertEqual([f["path"] for f in report["files"]], ["outputs/mine.txt"], report)

    def test_a_replaced_working_directory_is_refused_by_name(self):
        work = os.path.join(self.dir, "work")
        os.mkdir(work)
        source = (
            "import os\n"
            "def main():\n"
            "    os.makedirs('outputs')\n"
            "    open('outputs/a.txt', 'w').write('a')\n"
            "    os.rename(%r, %r)\n"
            "    os.makedirs(%r)\n"
            "    open(%r, 'w').write('planted')\n"
            "    return 1\n"
        ) % (work, work + ".old", os.path.join(work, "outputs"), os.path.join(work, "outputs", "planted.txt"))
        report = self.run_from_noted(work, source)
        self.assertEqual(
            (report["error_type"], report["error"]),
            ("invalid_result", "Output files cannot be collected: the working directory %s was replaced" % work),
        )

    def test_caps_are_output_limits_naming_the_cap(self):
        many = "import os\ndef main():\n    os.makedirs('outputs')\n    for i in range(4):\n        open('outputs/%d' % i, 'w').write('x')\n    return 1\n"
        report = run_in(self.dir, many, outputs=(3, 1 << 20))
        self.assertEqual((report["error_type"], report["error"]), ("output_limit", "Output limit exceeded (more than 3 output files)"))
        big = "import os\ndef main():\n    os.makedirs('outputs', exist_ok=True)\n    open('outputs/big', 'wb').write(b'x' * 2049)\n    return 1\n"
        report = run_in(self.dir, big, outputs=(100, 2048))
        self.assertEqual((report["error_type"], report["error"]), ("output_limit", "Output limit exceeded (output files over 2 KB)"))


class JobTest(unittest.TestCase):
    def tearDown(self):
        # prepare notes the working directory of the execution; a test's
        # temporary directory is not the next test's.
        harness.WORKDIR = None

    def test_parse_job_decodes_every_field(self):
        data = json.dumps({
            "script": "\ufeffdef main(d):\n    return d\n",
            "input": {"big": 2**70},
            "stdin": "line\n",
            "files": [{"path": "data/in.csv", "content": "eDEK"}],
            "outputs": {"max_files": 100, "max_bytes": 8},
            "prepare_outputs": True,
            "rlimit_as": 1 << 30,
        }).encode()
        job = harness.parse_job(data)
        self.assertEqual(job.script, "def main(d):\n    return d\n")
        self.assertEqual(job.input, {"big": 2**70})
        self.assertEqual(job.files, [("data/in.csv", b"x1\n")])
        self.assertEqual((job.stdin, job.outputs, job.prepare_outputs, job.rlimit_as), ("line\n", (100, 8), True, 1 << 30))

    def test_a_job_without_input_calls_main_without_arguments(self):
        job = harness.parse_job(b'{"script": "def main():\\n    return 1\\n"}')
        self.assertIs(job.input, harness.NO_INPUT)
        self.assertIsNone(job.outputs)

    def test_paths_that_leave_the_working_directory_are_refused(self):
        for path in ["/etc/passwd", "../x", "a/../../x", "a\x00b", ""]:
            data = json.dumps({"script": "", "files": [{"path": path, "content": ""}]}).encode()
            with self.assertRaises(ValueError, msg=path):
                harness.parse_job(data)

    def test_prepare_writes_files_outputs_and_stdin(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(directory))
        saved_cwd, saved_stdin = os.getcwd(), os.dup(0)
        os.chdir(directory)
        try:
            job = harness.Job("", stdin="first\nsecond\n", files=[("data/in.csv", b"x\n1\n")], prepare_outputs=True)
            self.assertIsNone(harness.prepare(job))
            with open("data/in.csv", "rb") as f:
                self.assertEqual(f.read(), b"x\n1\n")
            self.assertEqual(os.listdir("outputs"), [])
            self.assertEqual(os.read(0, 100), b"first\nsecond\n")
            # A file where a directory must go cannot be written: the request is at fault.
            clash = harness.Job("", files=[("data/in.csv/x", b"")])
            report = harness.prepare(clash)
            self.assertEqual(report["error_type"], "invalid_request")
            self.assertIn("files: cannot write 'data/in.csv/x'", report["error"])
        finally:
            os.dup2(saved_stdin, 0)
            os.close(saved_stdin)
            os.chdir(saved_cwd)

    def test_rlimit_as_gives_the_script_that_much_on_top_of_what_the_process_holds(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                held = harness.address_space()
                harness.prepare(harness.Job("", rlimit_as=256 << 20))
                lowered = resource.getrlimit(resource.RLIMIT_AS)
                want = min(x for x in (held + (256 << 20), soft, hard) if x != resource.RLIM_INFINITY)
                small = len(bytearray(64 << 20))
                try:
                    bytearray(512 << 20)
                    code = 3  # more than was given
                except MemoryError:
                    code = 0 if lowered[0] == lowered[1] and abs(lowered[0] - want) < (16 << 20) and small else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_rlimit_as_never_raises_the_limit(self):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                resource.setrlimit(resource.RLIMIT_AS, (harness.address_space() + (128 << 20),) * 2)
                before = resource.getrlimit(resource.RLIMIT_AS)
                harness.prepare(harness.Job("", rlimit_as=1 << 40))
                code = 0 if resource.getrlimit(resource.RLIMIT_AS) == before else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)


@contextlib.contextmanager
def _empty_stdin():
    saved = sys.stdin
    sys.stdin = io.StringIO("")
    try:
        yield
    finally:
        sys.stdin = saved


class WriteReportTest(unittest.TestCase):
    def written(self, report):
        r, w = os.pipe()
        saved = harness.REPORT_FD
        harness.REPORT_FD = w
        try:
            harness.write_report(report)
        finally:
            harness.REPORT_FD = saved
            os.close(w)
        with os.fdopen(r, "rb") as f:
            return f.read()

    def test_one_strict_json_object_in_utf8(self):
        data = self.written({"ok": True, "result": {"text": "héllo ✓", "n": 2**70}})
        self.assertEqual(json.loads(data.decode("utf-8")), {"ok": True, "result": {"text": "héllo ✓", "n": 2**70}})
        self.assertIn("héllo ✓".encode(), data)  # not \\u-escaped

    def test_lone_surrogates_in_error_texts_become_replacement_characters(self):
        data = self.written(harness.failure("exception", "ValueError: bad \ud800", "trace \udc80"))
        text = data.decode("utf-8")  # raises if not UTF-8
        report = json.loads(text)
        self.assertEqual(report["error"], "ValueError: bad \ufffd")

    def test_a_nan_that_slipped_through_is_an_invalid_result(self):
        data = self.written({"ok": True, "result": float("nan")})
        report = json.loads(data)
        self.assertEqual(report["error_type"], "invalid_result")


if __name__ == "__main__":
    unittest.main()

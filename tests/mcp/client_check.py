#!/usr/bin/env python3
"""Checks a pyexec MCP endpoint with the Python MCP SDK.

The client is independent of the service's own Go code and of the Go SDK it is
built with. Over Streamable HTTP it

1. lists the tools and expects run_python, taking `script` (and `input` as any
   JSON value), with an output schema;
2. runs the pandas example (examples/pandas_sum.py) and expects
   {"sum_a": 6, "sum_b": 15} back as structuredContent's result, and a text
   block holding the same JSON;
3. runs a script that raises and expects isError, with error_type
   "exception", the exception's message, a traceback through the script's own
   function and what the script printed.

It prints one line per check and exits 0 when all pass, 1 otherwise (a
mismatch, a protocol error, or no answer at all).

    client_check.py --url http://localhost:8080/mcp [--protocol legacy]

Run it with the interpreter scripts/install-mcp-client.sh installs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import mcp

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

# Raises in a function of its own, so the traceback must show the script's
# frames, after printing something that must come back as stdout.
FAILING_SCRIPT = """\
def divide(x):
    return 1 / x


def main():
    print("about to divide")
    return divide(0)
"""


class Checks:
    """Collects the outcome of each check and prints it as it is made."""

    def __init__(self) -> None:
        self.failed = 0

    def expect(self, ok: bool, what: str, got: Any = None) -> bool:
        if ok:
            print(f"ok    {what}")
        else:
            self.failed += 1
            print(f"FAIL  {what}: got {got!r}")
        return ok


# Step is one part of a check script: it makes its checks over the client.
Step = Callable[[mcp.Client, Checks], Awaitable[None]]


def text_json(result: mcp.types.CallToolResult) -> Any:
    """The JSON in the result's one text block, or None when there is none."""
    texts = [c.text for c in result.content if isinstance(c, mcp.types.TextContent)]
    if len(texts) != 1:
        return None
    try:
        return json.loads(texts[0])
    except ValueError:
        return None


async def check_tools(client: mcp.Client, checks: Checks) -> None:
    listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    if not checks.expect("run_python" in tools, "tools/list offers run_python", sorted(tools)):
        return
    tool = tools["run_python"]
    schema = tool.input_schema
    properties = schema.get("properties", {})
    checks.expect(properties.get("script", {}).get("type") == "string" and "script" in schema.get("required", []),
                  "run_python requires a string `script`", schema)
    checks.expect("input" in properties and "type" not in properties["input"],
                  "run_python takes `input` as any JSON value", properties.get("input"))
    output = tool.output_schema or {}
    checks.expect({"result", "stdout"} <= set(output.get("required", [])),
                  "run_python declares an output schema with result and stdout", output)
    checks.expect("pandas" in (tool.description or ""), "run_python's description mentions pandas", tool.description)


async def check_pandas(client: mcp.Client, checks: Checks) -> None:
    script = (EXAMPLES / "pandas_sum.py").read_text()
    result = await client.call_tool("run_python", {"script": script})
    content = result.structured_content
    if not checks.expect(not result.is_error, "the pandas example succeeds", content):
        return
    checks.expect(isinstance(content, dict) and content.get("result") == {"sum_a": 6, "sum_b": 15},
                  'structuredContent.result is {"sum_a": 6, "sum_b": 15}', content)
    checks.expect(isinstance(content, dict) and isinstance(content.get("stdout"), str),
                  "structuredContent.stdout is a string", content)
    checks.expect(text_json(result) == content, "the text block holds the same JSON", result.content)


async def check_failure(client: mcp.Client, checks: Checks) -> None:
    result = await client.call_tool("run_python", {"script": FAILING_SCRIPT})
    content = result.structured_content
    if not checks.expect(result.is_error, "a script that raises gives isError", result):
        return
    if not checks.expect(isinstance(content, dict), "the error has structuredContent", content):
        return
    checks.expect(content.get("error_type") == "exception", "error_type is exception", content.get("error_type"))
    checks.expect(str(content.get("error", "")).startswith("ZeroDivisionError"),
                  "error names ZeroDivisionError", content.get("error"))
    traceback = str(content.get("traceback", ""))
    checks.expect("ZeroDivisionError" in traceback and "in divide" in traceback,
                  "traceback runs through the script's divide()", traceback)
    checks.expect(content.get("stdout") == "about to divide", "stdout holds what was printed first", content.get("stdout"))
    checks.expect(text_json(result) == content, "the text block holds the same JSON", result.content)


async def run(url: str, protocol: str, timeout: float, steps: list[Step]) -> int:
    """Takes the steps in turn over one connection; returns how many checks failed."""
    checks = Checks()
    async with mcp.Client(url, mode=protocol, read_timeout_seconds=timeout) as client:
        for step in steps:
            await step(client, checks)
    return checks.failed


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside exc, out of the exception groups task groups raise."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def main(doc: str, steps: list[Step]) -> int:
    """The command line of a check script: doc is its docstring, steps its checks."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the MCP endpoint, e.g. http://localhost:8080/mcp")
    parser.add_argument("--protocol", choices=["auto", "legacy"], default="auto",
                        help="auto: the newest protocol both sides speak; legacy: the initialize handshake of 2025")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer")
    args = parser.parse_args()
    try:
        failed = asyncio.run(run(args.url, args.protocol, args.timeout, steps))
    except Exception as exc:  # any failure to get an answer is a failed check
        for leaf in leaves(exc):
            print(f"FAIL  {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    if failed:
        print(f"{failed} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(__doc__, [check_tools, check_pandas, check_failure]))

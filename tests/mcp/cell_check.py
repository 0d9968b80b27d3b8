#!/usr/bin/env python3
"""Checks a pyexec MCP endpoint's Python sessions with the Python MCP SDK.

Over Streamable HTTP, as an agent would, it

1. lists the tools and expects run_python_cell (requiring `code`) and
   end_python_session;
2. loads a CSV into a DataFrame with run_python_cell, without a session_id,
   and keeps the session_id the answer names;
3. asks, in a second call with that session_id, for int(df.a.sum()) and
   expects 4: an answer only the first call's state can give;
4. asks for df itself and expects its text form (result_format "text");
5. ends the session with end_python_session and expects a later cell in it
   to fail with session_not_found.

It prints one line per check and exits 0 when all pass, 1 otherwise.

    cell_check.py --url http://localhost:8080/mcp [--protocol legacy]

Run it with the interpreter scripts/install-mcp-client.sh installs.
"""

from __future__ import annotations

import sys

import mcp

from client_check import Checks, main, text_json

LOAD_CSV = 'import pandas as pd, io; df = pd.read_csv(io.StringIO("a,b\\n1,2\\n3,4\\n"))'


async def check_tools(client: mcp.Client, checks: Checks) -> None:
    listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    checks.expect({"run_python_cell", "end_python_session"} <= set(tools),
                  "tools/list offers run_python_cell and end_python_session", sorted(tools))
    cell = tools.get("run_python_cell")
    if cell is not None:
        checks.expect("code" in cell.input_schema.get("required", []), "run_python_cell requires `code`", cell.input_schema)


async def check_conversation(client: mcp.Client, checks: Checks) -> None:
    loaded = await client.call_tool("run_python_cell", {"code": LOAD_CSV})
    content = loaded.structured_content or {}
    if not checks.expect(not loaded.is_error, "loading the CSV succeeds", content):
        return
    session_id = content.get("session_id")
    if not checks.expect(isinstance(session_id, str) and session_id, "the first call names its session", content):
        return
    checks.expect(content.get("result") is None, "a cell that ends with a statement has a null result", content)
    checks.expect(text_json(loaded) == content, "the text block holds the same JSON", loaded.content)

    summed = await client.call_tool("run_python_cell", {"session_id": session_id, "code": "int(df.a.sum())"})
    content = summed.structured_content or {}
    checks.expect(not summed.is_error and content.get("result") == 4 and content.get("result_format") == "json",
                  "the second call reads the first call's DataFrame: int(df.a.sum()) is 4", content)
    checks.expect(content.get("session_id") == session_id, "the second call ran in the same session", content)

    shown = await client.call_tool("run_python_cell", {"session_id": session_id, "code": "df"})
    content = shown.structured_content or {}
    checks.expect(not shown.is_error and content.get("result_format") == "text" and "3  4" in str(content.get("result")),
                  "a DataFrame comes back in its text form", content)

    ended = await client.call_tool("end_python_session", {"session_id": session_id})
    checks.expect(not ended.is_error and (ended.structured_content or {}).get("ended") is True,
                  "end_python_session ends the session", ended.structured_content)

    after = await client.call_tool("run_python_cell", {"session_id": session_id, "code": "int(df.a.sum())"})
    content = after.structured_content or {}
    checks.expect(after.is_error and content.get("error_type") == "session_not_found",
                  "a cell in the ended session is session_not_found", content)


if __name__ == "__main__":
    sys.exit(main(__doc__, [check_tools, check_conversation]))

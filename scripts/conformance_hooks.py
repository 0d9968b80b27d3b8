"""schemathesis hooks of scripts/conformance.sh: generated scripts that run,
and the sessions generated requests start, ended again.

A generated `script` is nearly always random text, which the service rejects
before running any of it (no_main, syntax_error), and a generated Pub/Sub
message's `data` is nearly never base64 of a JSON request. Left at that, the
checks would rarely see an answer of the sandbox itself. These hooks give part
of the generated bodies a script that does run: one that prints generated text
and returns a generated JSON value, or one that fails in one of the ways a
script can (raises, exits, returns what is not JSON). Results of any shape,
stdout of any text and the script error types then go through the same checks
as everything else.
"""

import base64
import json
import urllib.error
import urllib.request
import uuid

import schemathesis
from hypothesis import strategies as st

# Any JSON value: what main() may return and what comes back as `result`.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)


def _returning(value, printed, is_async):
    # The value travels as JSON text in a Python string literal, so any JSON
    # value, big integers included, reaches main() exactly.
    return (
        "import json\n"
        f"{'async ' if is_async else ''}def main():\n"
        f"    print({printed!r})\n"
        f"    return json.loads({json.dumps(value)!r})\n"
    )


def _failing(kind, text):
    body = {
        "exception": f"raise ValueError({text!r})",
        "exit": "import sys; sys.exit(3)",
        "not_json": "return {'nan': float('nan'), 'set': {1, 2}}",
        "dataframe": "import pandas as pd; return pd.DataFrame({'a': [1]})",
    }[kind]
    return f"def main():\n    print({text!r})\n    {body}\n"


runnable_scripts = st.one_of(
    st.builds(_returning, json_values, st.text(), st.booleans()),
    st.builds(_failing, st.sampled_from(["exception", "exit", "not_json", "dataframe"]), st.text()),
)


def _execute_body(body, script, _):
    """A POST /execute body with its script replaced, or None if it has none.
    An empty script is the negative case of its minLength, which must stay as
    generated to be refused."""
    if not isinstance(body, dict) or not isinstance(body.get("script"), str) or body["script"] == "":
        return None
    return {**body, "script": script}


def _event_body(body, script, message_id):
    """A POST / body (push envelope or structured CloudEvent) whose message
    carries script, or None if it has no message. The message ID is fresh: a
    repeated one is acknowledged as a duplicate without running."""
    data = base64.b64encode(json.dumps({"script": script, "id": "conformance"}).encode()).decode()
    message = {"data": data, "messageId": message_id}
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("message"), dict):
        return {**body, "message": {**body["message"], **message}}
    envelope = body.get("data")
    if isinstance(envelope, dict) and isinstance(envelope.get("message"), dict):
        return {**body, "data": {**envelope, "message": {**envelope["message"], **message}}}
    return None


_replacers = {"/execute": _execute_body, "/": _event_body}


@schemathesis.hook
def flatmap_body(context, body):
    operation = context.operation
    replace = _replacers.get(operation.path) if operation and operation.method.upper() == "POST" else None
    if replace is None or replace(body, "", "") is None:
        return st.just(body)
    # A message ID of its own per request, not drawn by Hypothesis, which
    # draws the same few again and again: a repeated ID is a duplicate that
    # is acknowledged without running.
    with_runnable = runnable_scripts.map(lambda script: replace(body, script, str(uuid.uuid4())))
    # Hypothesis draws the first alternative of one_of most often.
    return st.one_of(with_runnable, st.just(body))


@schemathesis.hook
def after_call(context, case, response):
    """Ends every session a generated POST /sessions started, so that they do
    not pile up to PYEXEC_MAX_SESSIONS, whose 503 busy would then answer every
    later one."""
    if case.operation.path != "/sessions" or response.status_code != 201:
        return
    session_id = json.loads(response.content)["session_id"]
    base = response.request.url.rsplit("/sessions", 1)[0]
    urllib.request.urlopen(urllib.request.Request(f"{base}/sessions/{session_id}", method="DELETE"), timeout=30).close()


_live_session = {}


@schemathesis.hook
def before_call(context, case, kwargs):
    """Points half the generated cells and state reads at a live session, so
    that they reach a session's cells rather than only session_not_found.
    One live session serves them all; a generated DELETE keeps its own ID, so
    that it never ends that session. Where sessions are refused (cold mode),
    calls keep their generated IDs."""
    if case.method.upper() == "DELETE" or not case.operation.path.startswith("/sessions/{session_id}"):
        return
    if case.path_parameters is None or uuid.uuid4().int % 2:
        return
    base = case.operation.schema.config.base_url
    if base not in _live_session:
        request = urllib.request.Request(f"{base}/sessions", data=b"{}", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                _live_session[base] = json.loads(response.read())["session_id"]
        except urllib.error.HTTPError:
            _live_session[base] = None
    if _live_session[base] is not None:
        case.path_parameters = {**case.path_parameters, "session_id": _live_session[base]}

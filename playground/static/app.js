// pyexec playground: a small code editor over a textarea, and a client of
// POST /execute and of sessions (/sessions) on this page's own origin. No dependencies; the page's
// Content-Security-Policy allows no other origin and no inline code, so
// everything the service returns is put in the page as text, never as HTML.
"use strict";

const INDENT = "    ";

const $ = (id) => document.getElementById(id);
const code = $("code");
const gutterLines = $("gutter-lines");
const runButton = $("run");
const examplesMenu = $("examples");
const inputBox = $("input");
const inputMessage = $("input-message");
const stdinBox = $("stdin");
const upload = $("upload");
const uploadList = $("upload-list");
const uploadMessage = $("upload-message");
const output = $("output");
const statusLine = $("status");

// ---------------------------------------------------------------- editor

// The gutter holds one number per line of the script and follows the
// textarea's scrolling. Lines never wrap (wrap="off"), so numbers and lines
// stay aligned.
let gutterCount = 0;
let markedLine = 0;

function renderGutter() {
  const count = code.value.split("\n").length;
  if (count !== gutterCount) {
    const fragment = document.createDocumentFragment();
    for (let n = gutterCount + 1; n <= count; n++) {
      const line = document.createElement("div");
      line.textContent = String(n);
      fragment.appendChild(line);
    }
    while (gutterLines.childElementCount > count) gutterLines.lastElementChild.remove();
    gutterLines.appendChild(fragment);
    gutterCount = count;
  }
  syncGutter();
}

function syncGutter() {
  gutterLines.style.transform = "translateY(" + -code.scrollTop + "px)";
}

// markLine highlights one line number (a line a traceback points at); 0
// clears it.
function markLine(n) {
  const old = gutterLines.children[markedLine - 1];
  if (old) old.classList.remove("marked");
  markedLine = n;
  const line = gutterLines.children[n - 1];
  if (line) line.classList.add("marked");
}

// lineRange is where line n (from 1) starts and ends in text, clamped to
// the text's lines.
function lineRange(text, n) {
  let start = 0;
  for (let i = 1; i < n; i++) {
    const next = text.indexOf("\n", start);
    if (next < 0) break;
    start = next + 1;
  }
  const end = text.indexOf("\n", start);
  return [start, end < 0 ? text.length : end];
}

// selectLine selects line n in the editor and scrolls it into view.
function selectLine(n) {
  const [start, end] = lineRange(code.value, n);
  code.focus();
  code.setSelectionRange(start, end);
  const lineHeight = parseFloat(getComputedStyle(code).lineHeight) || 20;
  const top = (n - 1) * lineHeight;
  if (top < code.scrollTop || top + lineHeight > code.scrollTop + code.clientHeight) {
    code.scrollTop = Math.max(0, top - code.clientHeight / 3);
  }
  markLine(n);
  syncGutter();
}

// edit replaces text[start:end] with text and then selects
// [selStart, selEnd]. It goes through the browser's editing commands where
// it can, so Ctrl+Z undoes an indent like any typing.
function edit(start, end, text, selStart, selEnd) {
  code.setSelectionRange(start, end);
  let done = false;
  try {
    done = document.execCommand(text === "" ? "delete" : "insertText", false, text);
  } catch (e) {
    done = false;
  }
  if (!done || code.value.slice(start, start + text.length) !== text) {
    code.setRangeText(text, start, end, "end");
    code.dispatchEvent(new Event("input"));
  }
  code.setSelectionRange(selStart, selEnd);
}

// selectedLines is the block of whole lines the selection touches; a
// selection that ends at the start of a line does not take that line.
function selectedLines() {
  const text = code.value;
  let { selectionStart: s, selectionEnd: e } = code;
  if (e > s && text[e - 1] === "\n") e--;
  const start = text.lastIndexOf("\n", s - 1) + 1;
  let end = text.indexOf("\n", e);
  if (end < 0) end = text.length;
  return { start, end, lines: text.slice(start, end).split("\n") };
}

function indent() {
  const { selectionStart: s, selectionEnd: e, value } = code;
  if (!value.slice(s, e).includes("\n")) {
    // A soft tab: spaces up to the next indentation stop.
    const column = s - (value.lastIndexOf("\n", s - 1) + 1);
    const pad = INDENT.slice(column % INDENT.length);
    edit(s, e, pad, s + pad.length, s + pad.length);
    return;
  }
  const block = selectedLines();
  const text = block.lines.map((l) => (l.trim() === "" ? l : INDENT + l)).join("\n");
  edit(block.start, block.end, text, block.start, block.start + text.length);
}

function dedent() {
  const { selectionStart: s, selectionEnd: e } = code;
  const block = selectedLines();
  let removedFirst = 0;
  const lines = block.lines.map((l, i) => {
    const n = l.startsWith("\t") ? 1 : l.length - l.replace(/^ {1,4}/, "").length;
    if (i === 0) removedFirst = n;
    return l.slice(n);
  });
  const text = lines.join("\n");
  if (text === block.lines.join("\n")) return;
  if (s === e || !code.value.slice(s, e).includes("\n")) {
    const caret = Math.max(block.start, s - removedFirst);
    edit(block.start, block.end, text, caret, caret + (e - s));
  } else {
    edit(block.start, block.end, text, block.start, block.start + text.length);
  }
}

// newline keeps the line's indentation, adds a level after a line that ends
// in ":" and drops one after return, pass, raise, break or continue.
function newline() {
  const { selectionStart: s, selectionEnd: e, value } = code;
  const lineStart = value.lastIndexOf("\n", s - 1) + 1;
  const before = value.slice(lineStart, s);
  let indentation = before.match(/^[ \t]*/)[0];
  const statement = before.replace(/#.*$/, "").trim();
  if (statement.endsWith(":")) {
    indentation += INDENT;
  } else if (/^(return|pass|raise|break|continue)\b/.test(statement)) {
    indentation = indentation.slice(0, Math.max(0, indentation.length - INDENT.length));
  }
  const text = "\n" + indentation;
  edit(s, e, text, s + text.length, s + text.length);
}

// backspace in leading spaces removes back to the previous indentation stop.
function backspace(event) {
  const { selectionStart: s, selectionEnd: e, value } = code;
  if (s !== e) return;
  const lineStart = value.lastIndexOf("\n", s - 1) + 1;
  const before = value.slice(lineStart, s);
  if (before === "" || /[^ ]/.test(before)) return;
  event.preventDefault();
  const n = before.length % INDENT.length || INDENT.length;
  edit(s - n, s, "", s - n, s - n);
}

// After Esc, Tab leaves the editor instead of indenting, so keyboard users
// are never trapped in it.
let tabLeaves = false;

code.addEventListener("keydown", (event) => {
  const modified = event.ctrlKey || event.metaKey || event.altKey;
  if (event.key === "Escape") {
    tabLeaves = true;
    return;
  }
  if (event.key === "Tab" && !modified) {
    if (tabLeaves) {
      tabLeaves = false;
      return;
    }
    event.preventDefault();
    if (event.shiftKey) dedent();
    else indent();
    return;
  }
  tabLeaves = false;
  if (event.isComposing || modified) return;
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    newline();
  } else if (event.key === "Backspace") {
    backspace(event);
  }
});
code.addEventListener("input", () => {
  markLine(0);
  renderGutter();
  // An edited script is no longer the example, and picking that example
  // again must load it afresh.
  examplesMenu.value = "";
});
code.addEventListener("scroll", syncGutter);

// Ctrl+Enter (Cmd+Enter on a Mac) runs from anywhere on the page.
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    run();
  }
});

function setScript(text) {
  code.value = text;
  code.scrollTop = 0;
  code.setSelectionRange(0, 0);
  markLine(0);
  renderGutter();
}

// -------------------------------------------------------------- examples

let examples = [];

async function loadExamples() {
  try {
    const response = await fetch("/playground/examples.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    examples = await response.json();
  } catch (err) {
    statusLine.textContent = "Could not load the examples (" + err.message + "). You can still write a script.";
    return;
  }
  for (const ex of examples) {
    const option = document.createElement("option");
    option.value = ex.name;
    option.textContent = ex.title;
    examplesMenu.appendChild(option);
  }
  if (code.value === "" && examples.length > 0) {
    examplesMenu.value = examples[0].name;
    pickExample();
  }
}

function pickExample() {
  const ex = examples.find((e) => e.name === examplesMenu.value);
  if (!ex) return;
  setScript(ex.script);
  inputBox.value = ex.input || "";
  checkInput();
  if (ex.input) $("request-extras").open = true;
}

examplesMenu.addEventListener("change", pickExample);

// ------------------------------------------------------- request extras

// checkInput validates the input box; it returns the JSON text to send,
// null for none, or undefined when it is not valid JSON.
function checkInput() {
  const text = inputBox.value.trim();
  if (text === "") {
    showInputMessage("");
    return null;
  }
  try {
    JSON.parse(text);
  } catch (err) {
    showInputMessage("Input is not valid JSON: " + err.message +
      '. Write a JSON value such as {"min": 2}, [1, 2, 3] or "text", or leave the box empty.');
    return undefined;
  }
  showInputMessage("");
  return text;
}

function showInputMessage(text) {
  inputMessage.textContent = text;
  inputBox.setAttribute("aria-invalid", text === "" ? "false" : "true");
}

let inputTimer = 0;
inputBox.addEventListener("input", () => {
  clearTimeout(inputTimer);
  inputTimer = setTimeout(checkInput, 400);
});
inputBox.addEventListener("blur", checkInput);

// Uploaded files go into the request's files, base64-encoded, each at a
// path the user can change (data/<name> to start with).
let uploads = [];
const MAX_UPLOAD_BYTES = 8 << 20;

upload.addEventListener("change", async () => {
  uploadMessage.textContent = "";
  for (const f of Array.from(upload.files)) {
    try {
      const bytes = new Uint8Array(await f.arrayBuffer());
      uploads.push({ path: "data/" + f.name, size: bytes.length, content: toBase64(bytes) });
    } catch (err) {
      uploadMessage.textContent = "Could not read " + f.name + ": " + err.message;
    }
  }
  upload.value = "";
  renderUploads();
});

function renderUploads() {
  uploadList.replaceChildren();
  uploads.forEach((u, i) => {
    const item = document.createElement("li");
    const label = document.createElement("label");
    label.textContent = "Path ";
    const path = document.createElement("input");
    path.type = "text";
    path.value = u.path;
    path.spellcheck = false;
    path.addEventListener("input", () => { u.path = path.value; });
    label.appendChild(path);
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = formatBytes(u.size);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", "Remove " + u.path);
    remove.addEventListener("click", () => {
      uploads.splice(i, 1);
      renderUploads();
      upload.focus();
    });
    item.append(label, size, remove);
    uploadList.appendChild(item);
  });
  const total = uploads.reduce((n, u) => n + u.size, 0);
  if (total > MAX_UPLOAD_BYTES) {
    uploadMessage.textContent = "The files total " + formatBytes(total) + "; the service takes at most 8 MiB.";
  }
}

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function formatBytes(n) {
  if (n < 1024) return n + " bytes";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  return (n / (1 << 20)).toFixed(1) + " MiB";
}

// ------------------------------------------------------------------ run

// requestBody is the api.Request JSON. The optional fields are sent only
// when filled, so a plain script is the plain request every pyexec takes.
// The input's own text is sent, so its numbers arrive exactly as written.
function requestBody(input) {
  let body = '{"script":' + JSON.stringify(code.value);
  if (input !== null) body += ',"input":' + input;
  if (stdinBox.value !== "") body += ',"stdin":' + JSON.stringify(stdinBox.value);
  if (uploads.length > 0) {
    body += ',"files":' + JSON.stringify(uploads.map((u) => ({ path: u.path, content: u.content, encoding: "base64" })));
  }
  return body + "}";
}

let running = false;
let downloadURLs = [];

async function run() {
  if (running) return;
  if (keepState.checked) {
    runCell();
    return;
  }
  const input = checkInput();
  if (input === undefined) {
    $("request-extras").open = true;
    statusLine.textContent = "Not run: the input box does not hold valid JSON.";
    inputBox.focus();
    return;
  }
  const exchanged = await exchange(() => {
    statusLine.textContent = "Running…";
    return fetch("/execute", { method: "POST", headers: JSON_HEADERS, body: requestBody(input) });
  });
  if (exchanged) show(exchanged);
}

// exchange marks the page busy while the request that send makes runs, and
// answers { response, elapsed, answer }, answer parsed; or undefined after
// showing why there is none: the service could not be reached, its answer
// is not JSON, or send made no request (and has shown why). send gets the
// time the run started, and answers the response, or null.
async function exchange(send) {
  running = true;
  runButton.disabled = true;
  output.setAttribute("aria-busy", "true");
  const started = performance.now();
  let response, text;
  try {
    response = await send(started);
    if (!response) return undefined;
    text = await response.text();
  } catch (err) {
    show({ failed: "Could not reach the service: " + err.message });
    return undefined;
  } finally {
    running = false;
    runButton.disabled = false;
    output.removeAttribute("aria-busy");
  }
  const elapsed = performance.now() - started;
  try {
    return { response, elapsed, answer: parseJSON(text) };
  } catch (err) {
    show({ response, elapsed, failed: "The service answered HTTP " + response.status + " with something that is not JSON." });
    return undefined;
  }
}

runButton.addEventListener("click", run);

// show puts one answer in the output pane. cell is the number of the
// session's cell the answer is of, 0 for a one-shot run.
function show({ response, elapsed, answer, failed, cell = 0 }) {
  for (const url of downloadURLs) URL.revokeObjectURL(url);
  downloadURLs = [];
  const field = (name) => (answer instanceof Map ? answer.get(name) : undefined);

  $("meta").hidden = !response;
  if (response) {
    $("meta-status").textContent = response.status + (response.statusText ? " " + response.statusText : "");
    $("meta-duration").textContent = Math.round(elapsed) + " ms";
    $("meta-id").textContent = response.headers.get("X-Execution-Id") || "none";
  }

  const errorText = failed || field("error");
  const errorType = field("error_type");
  $("error").hidden = errorText === undefined;
  $("error-type").textContent = typeof errorType === "string" ? errorType : "";
  showErrorMessage(typeof errorText === "string" ? errorText : "");
  const traceback = field("traceback");
  $("traceback").hidden = typeof traceback !== "string" || traceback === "";
  showTraceback(typeof traceback === "string" ? traceback : "", cell ? "<cell " + cell + ">" : "<script>");

  const ok = answer instanceof Map && answer.has("result") && errorText === undefined;
  // A cell that ends with a statement has no value (null), and shows none.
  const valued = ok && !(cell && answer.get("result") === null);
  $("result-block").hidden = !valued;
  $("result").textContent = valued ? (cell ? formatValue(answer) : formatJSON(answer.get("result"), "")) : "";

  const stdout = field("stdout");
  $("stdout-block").hidden = typeof stdout !== "string";
  $("stdout").textContent = typeof stdout === "string" ? stdout : "";
  $("stdout").classList.toggle("empty", stdout === "");

  showDisplay(field("display"));
  showFiles(field("files"));

  if (ok) {
    statusLine.textContent = "Finished in " + Math.round(elapsed) + " ms.";
  } else if (errorType) {
    statusLine.textContent = "Failed with " + errorType + ": " + (errorText || "");
  } else {
    statusLine.textContent = "Failed. " + (errorText || "");
  }
  output.dataset.state = ok ? "ok" : "error";
  output.dataset.runs = String(Number(output.dataset.runs || "0") + 1);
}

// Line references in errors become buttons that select the line in the
// editor: "line N" in the traceback frames of the script (or of the cell
// just run, whose code the editor holds), and "(line N)" at the end of a
// syntax error.
const FRAME_LINE = /^(\s*File "(<[^">]*>)", )line (\d+)(.*)$/;
const SYNTAX_LINE = /^(.*\()line (\d+)(\).*)$/s;

function lineButton(n) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "line-link";
  button.dataset.line = n;
  button.textContent = "line " + n;
  button.setAttribute("aria-label", "Go to line " + n + " in the editor");
  button.addEventListener("click", () => selectLine(Number(n)));
  return button;
}

function showErrorMessage(text) {
  const target = $("error-message");
  const match = $("error-type").textContent === "syntax_error" ? SYNTAX_LINE.exec(text) : null;
  if (!match) {
    target.textContent = text;
    return;
  }
  target.replaceChildren(match[1], lineButton(match[2]), match[3]);
}

// showTraceback shows a traceback with the frames of file linked.
function showTraceback(text, file) {
  const target = $("traceback");
  target.replaceChildren();
  text.split("\n").forEach((line, i, lines) => {
    const match = FRAME_LINE.exec(line);
    if (match && match[2] === file) target.append(match[1], lineButton(match[3]), match[4]);
    else target.append(line);
    if (i < lines.length - 1) target.append("\n");
  });
}

// showDisplay shows an answer's rich outputs in order: a PNG as an image, an
// HTML table rebuilt from its cells' text, a text as text. The service's
// HTML is never put into the page as it is: only the table's rows, cells and
// their spans are copied, as text, so no element, attribute, script or style
// of it survives.
function showDisplay(items) {
  const box = openBlock("display", items);
  for (const d of Array.isArray(items) ? items : []) {
    if (!(d instanceof Map)) continue;
    const type = String(d.get("type"));
    const data = String(d.get("data"));
    if (type === "image/png") {
      try {
        const url = blobURL(fromBase64(data), "image/png");
        const img = document.createElement("img");
        img.src = url;
        img.alt = "A figure the script drew";
        box.appendChild(img);
      } catch (err) {
        box.appendChild(textBlock("(an image that could not be decoded: " + err.message + ")"));
      }
    } else if (type === "text/html") {
      box.appendChild(tableFromHTML(data));
    } else if (type === "text/plain") {
      // A DataFrame's text form follows its table: the table shows it.
      const previous = items[items.indexOf(d) - 1];
      if (previous instanceof Map && previous.get("type") === "text/html") continue;
      box.appendChild(textBlock(data));
    }
  }
}

// openBlock empties the element id and shows its section, id + "-block",
// only when items is an array with anything in it. It answers the element.
function openBlock(id, items) {
  const element = $(id);
  element.replaceChildren();
  $(id + "-block").hidden = !Array.isArray(items) || items.length === 0;
  return element;
}

// blobURL is a URL of bytes for the page to show or download; the next run
// revokes it.
function blobURL(bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  downloadURLs.push(url);
  return url;
}

function textBlock(text) {
  const pre = document.createElement("pre");
  pre.textContent = text;
  return pre;
}

// tableFromHTML builds a new table from the text of the first table in
// html, parsed inertly (DOMParser runs no script and loads nothing).
function tableFromHTML(html) {
  const parsed = new DOMParser().parseFromString(html, "text/html").querySelector("table");
  const table = document.createElement("table");
  table.className = "frame";
  if (!parsed) return textBlock(html);
  for (const row of parsed.rows) {
    const tr = table.insertRow();
    for (const cell of row.cells) {
      const out = document.createElement(cell.tagName === "TH" ? "th" : "td");
      out.textContent = cell.textContent;
      if (cell.colSpan > 1) out.colSpan = Math.min(cell.colSpan, 100);
      if (cell.rowSpan > 1) out.rowSpan = Math.min(cell.rowSpan, 100);
      tr.appendChild(out);
    }
  }
  return table;
}

function showFiles(files) {
  const list = openBlock("files", files);
  for (const f of Array.isArray(files) ? files : []) {
    if (!(f instanceof Map)) continue;
    const path = String(f.get("path"));
    const item = document.createElement("li");
    try {
      const bytes = fromBase64(String(f.get("content")));
      const url = blobURL(bytes, "application/octet-stream");
      const link = document.createElement("a");
      link.href = url;
      link.download = path.split("/").pop();
      link.textContent = path;
      item.append(link, " (" + formatBytes(bytes.length) + ")");
    } catch (err) {
      item.textContent = path + " (could not be decoded: " + err.message + ")";
    }
    list.appendChild(item);
  }
}

// ------------------------------------------------------------- sessions

// With "Keep state" on, each Run is the next cell of one session (SPEC §11):
// names, imports and files stay from one Run to the next. The session starts
// on the first Run and ends on Restart, when the switch goes off, when the
// page is left, or when a cell ends it; the history lists its cells.
const keepState = $("keep-state");
const restartButton = $("restart");
const sessionBlock = $("session-block");
const historyList = $("history");

// session is the current session, { id, cells }, with cells the number of
// cells sent to it so far (the service numbers them alike: "<cell 2>");
// null when the next Run starts one.
let session = null;

const JSON_HEADERS = { "Content-Type": "application/json", Accept: "application/json" };

// endSession deletes the session, if there is one. keepalive lets the
// DELETE outlive a page that is being left (sendBeacon can only POST).
function endSession() {
  if (!session) return;
  const id = session.id;
  session = null;
  fetch("/sessions/" + encodeURIComponent(id), { method: "DELETE", keepalive: true }).catch(() => {});
}

function clearHistory() {
  historyList.replaceChildren();
}

keepState.addEventListener("change", () => {
  endSession();
  clearHistory();
  sessionBlock.hidden = !keepState.checked;
  restartButton.hidden = !keepState.checked;
  statusLine.textContent = keepState.checked
    ? "Keep state is on: the next Run starts a session, and each Run after it adds a cell."
    : "Keep state is off: each Run runs the script on its own.";
});

restartButton.addEventListener("click", () => {
  endSession();
  clearHistory();
  statusLine.textContent = "Restarted: the session's state is gone, and the next Run starts a new session.";
});

window.addEventListener("pagehide", () => {
  if (!session) return;
  endSession();
  addNote("The session ended when the page was left; the next Run starts a new one.");
});

// cellBody is the body of POST /sessions/{id}/execute: the editor's code,
// stdin when given, and the uploads this session has not had yet.
function cellBody(s) {
  const body = { code: code.value };
  if (stdinBox.value !== "") body.stdin = stdinBox.value;
  const fresh = uploads.filter((u) => u.sentTo !== s.id);
  if (fresh.length > 0) {
    body.files = fresh.map((u) => ({ path: u.path, content: u.content, encoding: "base64" }));
    for (const u of fresh) u.sentTo = s.id;
  }
  return JSON.stringify(body);
}

// startSession creates a session; it answers it, or null after showing why
// there is none.
async function startSession(started) {
  statusLine.textContent = "Starting a session…";
  const response = await fetch("/sessions", { method: "POST", headers: JSON_HEADERS, body: "{}" });
  const text = await response.text();
  let answer;
  try {
    answer = parseJSON(text);
  } catch (err) {
    answer = undefined;
  }
  const id = answer instanceof Map ? answer.get("session_id") : undefined;
  if (response.status !== 201 || typeof id !== "string") {
    const failed = answer instanceof Map && answer.has("error")
      ? undefined
      : "Could not start a session: the service answered HTTP " + response.status + ".";
    show({ response, elapsed: performance.now() - started, answer, failed });
    return null;
  }
  if (historyList.childElementCount > 0) addNote("A new session started: the names of the cells above are gone.");
  return { id, cells: 0 };
}

// runCell runs the editor's code as the next cell of the session.
async function runCell() {
  const source = code.value;
  let s;
  const exchanged = await exchange(async (started) => {
    if (!session) {
      const created = await startSession(started);
      session = created;
      // The switch may have gone off while the session started.
      if (created && !keepState.checked) {
        endSession();
        statusLine.textContent = "Not run: Keep state went off while the session started.";
        return null;
      }
    }
    s = session;
    if (!s) return null;
    s.cells++;
    statusLine.textContent = "Running cell " + s.cells + "…";
    return fetch("/sessions/" + encodeURIComponent(s.id) + "/execute", {
      method: "POST",
      headers: JSON_HEADERS,
      body: cellBody(s),
    });
  });
  if (!exchanged) return;
  const { response, elapsed, answer } = exchanged;
  const field = (name) => (answer instanceof Map ? answer.get(name) : undefined);
  const errorType = field("error_type");
  const notFound = errorType === "session_not_found";
  const ran = !notFound && errorType !== "session_busy" && errorType !== "busy";
  show({ response, elapsed, answer, cell: ran ? s.cells : 0 });
  // Restart, or the switch, may have ended this session while the cell
  // ran; its history is gone then, and the answer only shows.
  if (session !== s) return;
  if (ran) addCell(s.cells, source, answer);
  else s.cells--;
  if (notFound || field("session_ended") === true) {
    session = null;
    const why = typeof field("error") === "string" ? field("error") : "";
    addNote("The session ended" + (why ? " (" + why + ")" : "") + ". The next Run starts a new session.");
    statusLine.textContent = "The session has ended" + (notFound ? "" : " (" + errorType + ")") +
      ": its state is gone. The next Run starts a new session.";
  } else if (!field("error")) {
    statusLine.textContent = "Cell " + s.cells + " finished in " + Math.round(elapsed) + " ms.";
  }
}

// addCell adds a cell's code and a short account of its answer to the
// history, newest last.
function addCell(n, source, answer) {
  const item = document.createElement("li");
  item.className = "cell";
  const label = document.createElement("span");
  label.className = "cell-label";
  label.textContent = "[" + n + "]";
  const input = textBlock(source);
  input.className = "cell-code";
  item.append(label, input);
  const stdout = answer instanceof Map ? answer.get("stdout") : undefined;
  if (typeof stdout === "string" && stdout !== "") {
    const out = textBlock(stdout);
    out.className = "cell-stdout";
    item.appendChild(out);
  }
  const error = answer instanceof Map ? answer.get("error") : undefined;
  if (typeof error === "string") {
    item.classList.add("failed");
    const line = textBlock(error);
    line.className = "cell-error";
    item.appendChild(line);
  } else if (answer instanceof Map && answer.get("result") !== null && answer.has("result")) {
    const value = textBlock(formatValue(answer));
    value.className = "cell-result";
    item.appendChild(value);
  }
  historyList.appendChild(item);
  historyList.scrollTop = historyList.scrollHeight;
}

function addNote(text) {
  const item = document.createElement("li");
  item.className = "note";
  item.textContent = text;
  historyList.appendChild(item);
}

// formatValue is a cell's value as it shows: a value with no JSON form
// comes as the text of its repr(), shown as it is, not as a JSON string.
function formatValue(answer) {
  const result = answer.get("result");
  if (answer.get("result_format") === "text" && typeof result === "string") return result;
  return formatJSON(result, "");
}

// ---------------------------------------------------------------- JSON

// parseJSON parses JSON keeping each number's text (as a Num) and each
// object's key order (as a Map), so results show exactly as the service sent
// them: 3.0 stays 3.0 and a 30-digit integer keeps every digit.
class Num {
  constructor(text) {
    this.text = text;
  }
}

function parseJSON(text) {
  let i = 0;
  const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const fail = () => {
    throw new SyntaxError("invalid JSON at offset " + i);
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const token = (re) => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) fail();
    i = re.lastIndex;
    return m[0];
  };
  const expect = (c) => {
    space();
    if (text[i] !== c) fail();
    i++;
  };
  const value = () => {
    space();
    const c = text[i];
    if (c === "{") {
      i++;
      const object = new Map();
      space();
      if (text[i] === "}") {
        i++;
        return object;
      }
      for (;;) {
        space();
        const key = JSON.parse(token(STRING));
        expect(":");
        object.set(key, value());
        space();
        if (text[i] === ",") {
          i++;
          continue;
        }
        expect("}");
        return object;
      }
    }
    if (c === "[") {
      i++;
      const array = [];
      space();
      if (text[i] === "]") {
        i++;
        return array;
      }
      for (;;) {
        array.push(value());
        space();
        if (text[i] === ",") {
          i++;
          continue;
        }
        expect("]");
        return array;
      }
    }
    if (c === '"') return JSON.parse(token(STRING));
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return new Num(token(NUMBER));
  };
  const result = value();
  space();
  if (i !== text.length) fail();
  return result;
}

// formatJSON writes a parsed value indented by two spaces per level.
function formatJSON(v, indentation) {
  if (v instanceof Num) return v.text;
  if (v === null || typeof v === "boolean") return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  const inner = indentation + "  ";
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    return "[\n" + v.map((x) => inner + formatJSON(x, inner)).join(",\n") + "\n" + indentation + "]";
  }
  if (v.size === 0) return "{}";
  const members = [];
  for (const [k, x] of v) members.push(inner + JSON.stringify(k) + ": " + formatJSON(x, inner));
  return "{\n" + members.join(",\n") + "\n" + indentation + "}";
}

// ---------------------------------------------------------------- start

renderGutter();
loadExamples();

// A build's log, followed as it grows: GET /kiln/v1/builds/{id}/log?offset=<size> about once a
// second while the answer says streaming, appended to a monospace pane that stays scrolled to
// the end unless its reader scrolled up.

import { api, saveBlob } from "./api.js";
import { badge, formatBytes, h } from "./ui.js";

const POLL_MS = 1000;
const RETRY_MS = 3000;
const MAX_CHARS = 4_000_000; // past this the pane keeps the end only

export function logPanel(context, buildId) {
  const pane = h("pre.log#log", { testid: "log", tabindex: 0, "aria-label": "Build log", "aria-live": "off" });
  const state = h("span", { testid: "log-state" }, badge("connecting", { tone: "muted" }));
  const size = h("span.muted.small", { testid: "log-size" }, "");
  const follow = h("input#log-follow", { type: "checkbox", checked: true, testid: "log-follow" });
  const note = h("div.log-note.muted.small", { testid: "log-note" });
  const save = h("button.btn.btn-small.btn-ghost", { type: "button", testid: "log-save" }, "Save log");
  const panel = h(
    "section.card#log-card",
    { "aria-labelledby": "log-title" },
    h(
      "div.card-header",
      h("h2#log-title", "Log"),
      h("div.toolbar", state, size, h("label.check", { for: "log-follow" }, follow, " Follow"), save),
    ),
    pane,
    note,
  );

  let offset = 0;
  let streaming = true;
  let text = "";
  let lastTop = 0;

  pane.addEventListener("scroll", () => {
    const atEnd = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 24;
    if (pane.scrollTop < lastTop && !atEnd) follow.checked = false; // the reader scrolled up
    else if (atEnd && streaming) follow.checked = true;
    lastTop = pane.scrollTop;
  });
  follow.addEventListener("change", () => follow.checked && scrollToEnd());
  save.addEventListener("click", () => saveBlob(new Blob([text], { type: "text/plain" }), `${buildId}.log`));

  function scrollToEnd() {
    pane.scrollTop = pane.scrollHeight;
    lastTop = pane.scrollTop;
  }

  function appendText(more) {
    if (!more) return;
    if (!text) pane.replaceChildren(); // the placeholder goes
    text += more;
    if (text.length > MAX_CHARS) {
      text = text.slice(-MAX_CHARS);
      pane.textContent = text;
      note.textContent = "The start of the log is cut off here; Save log keeps what is shown.";
    } else {
      pane.append(document.createTextNode(more));
    }
    if (follow.checked) scrollToEnd();
  }

  function showState() {
    state.replaceChildren(streaming ? badge("live", { tone: "run", title: "following the log as it grows" }) : badge("complete", { tone: "ok" }));
    size.textContent = formatBytes(offset);
    pane.dataset.streaming = String(streaming);
    pane.dataset.size = String(offset);
    if (!text) {
      const waiting = streaming ? "Waiting for the build to write its log…" : "(this build wrote no log)";
      pane.replaceChildren(h("span.log-placeholder", { testid: "log-placeholder" }, waiting));
    }
  }

  async function poll() {
    if (!context.alive) return;
    try {
      const part = await api(`/kiln/v1/builds/${encodeURIComponent(buildId)}/log?offset=${offset}`, { signal: context.signal });
      if (!context.alive) return;
      // a log that was replaced (a retried build) starts again from 0
      if (typeof part.size === "number" && part.size < offset) {
        offset = 0;
        text = "";
        pane.replaceChildren();
        return context.later(0, poll);
      }
      appendText(part.text || "");
      offset = typeof part.size === "number" ? part.size : offset + new TextEncoder().encode(part.text || "").length;
      streaming = part.streaming !== false;
      note.textContent = "";
      showState();
      if (streaming) context.later(POLL_MS, poll);
    } catch (err) {
      if (err.name === "AbortError" || !context.alive) return;
      note.textContent = `The log could not be read: ${err.message}. Trying again…`;
      context.later(RETRY_MS, poll);
    }
  }

  return { element: panel, start: poll };
}

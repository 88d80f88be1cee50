// Small pieces every view uses: an element builder, formats (times, sizes, durations), status
// badges, banners, empty states, tables and the copy button. No framework.

/** h("a.link#id", {href, onclick, dataset: {testid}}, ...children) */
export function h(spec, attrs = {}, ...children) {
  const [, tag = "div", rest = ""] = /^([a-z0-9-]*)(.*)$/i.exec(spec);
  const el = document.createElement(tag || "div");
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs === null || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "testid") el.dataset.testid = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") el.className += (el.className ? " " : "") + value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Changes the hash query without adding a history entry per filter change. */
export function replaceQuery(path, params) {
  const clean = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) clean.set(key, value);
  const text = clean.toString();
  history.replaceState(null, "", `#${path}${text ? `?${text}` : ""}`);
}

// -- formats -----------------------------------------------------------------------------------
/** A timestamp from any face: ISO 8601 with or without a zone (none means UTC). */
export function parseTime(value) {
  if (!value) return null;
  let text = String(value).trim();
  if (/^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text)) text = text.replace(" ", "T") + "Z";
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

export function relativeTime(value, now = Date.now()) {
  const date = parseTime(value);
  if (!date) return "—";
  const seconds = (date.getTime() - now) / 1000;
  if (Math.abs(seconds) < 10) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return RELATIVE.format(Math.round(seconds / size), unit);
    }
  }
  return "—";
}

/** <time> with the relative text and the exact time in its title; re-rendered by tick(). */
export function timeEl(value) {
  const date = parseTime(value);
  if (!date) return h("span.muted", "—");
  return h("time", { datetime: date.toISOString(), title: date.toLocaleString() }, relativeTime(value));
}

/** Refreshes every relative time on the page. */
export function tick(root = document) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    el.textContent = relativeTime(el.getAttribute("datetime"));
  }
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || bytes === "") return "—";
  let value = Number(bytes);
  if (!Number.isFinite(value)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "—";
  const s = Number(seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Seconds between two timestamps (the end defaults to now). */
export function elapsed(start, end) {
  const a = parseTime(start);
  const b = end ? parseTime(end) : new Date();
  return a && b ? Math.max(0, (b - a) / 1000) : null;
}

export function formatCost(cost) {
  if (!cost || typeof cost !== "object") return "—";
  const amount = cost.usd ?? cost.estimate;
  if (amount === undefined || amount === null) return "—";
  const currency = cost.usd !== undefined ? "USD" : cost.currency || "USD";
  if (amount > 0 && amount < 0.0001) return `< ${formatCost({ ...cost, usd: undefined, estimate: 0.0001 })}`;
  const digits = amount > 0 && amount < 0.01 ? 4 : 2;
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }).format(amount);
  } catch {
    return `${amount} ${currency}`;
  }
}

export function shortId(id, length = 8) {
  const text = String(id ?? "");
  return text.length > length + 2 ? text.slice(0, length) : text;
}

// -- badges ------------------------------------------------------------------------------------
const TONES = {
  success: "ok", active: "ok", complete: "ok", hit: "ok", public: "info",
  error: "bad", failed: "bad", killed: "bad", deleted: "bad",
  running: "run", building_image: "run", fetching_recipe: "run", fetching_image: "run",
  waiting_for_repos: "run", uploading: "run", registering: "run", in_progress: "run",
  saving: "run", importing: "run", uploading_data: "run",
  waiting_on_user: "warn", deactivated: "warn", pending: "warn", miss: "muted",
  queued: "muted", creating: "muted", stale: "muted", private: "muted", shared: "info",
  community: "info",
};

export function badge(text, { tone, testid, title } = {}) {
  const label = String(text ?? "unknown");
  return h(`span.badge.tone-${tone || TONES[label] || "muted"}`, { testid, title }, label.replace(/_/g, " "));
}

// -- page pieces -------------------------------------------------------------------------------
export function banner(message, { kind = "error", testid = "error-banner" } = {}) {
  return h(`div.banner.banner-${kind}`, { role: kind === "error" ? "alert" : "status", testid }, message);
}

/** Shows (or clears, with no message) the banner at the top of a view's container. */
export function showError(container, message) {
  let slot = container.querySelector(":scope > .banner-slot");
  if (!slot) {
    slot = h("div.banner-slot");
    container.prepend(slot);
  }
  slot.replaceChildren(message ? banner(message) : "");
}

export function emptyState(title, text, testid = "empty-state") {
  return h("div.empty", { testid }, h("div.empty-icon", { "aria-hidden": "true" }, "◇"), h("h3", title), h("p.muted", text));
}

export function loading(text = "Loading…") {
  return h("div.loading", { role: "status", testid: "loading" }, h("span.spinner", { "aria-hidden": "true" }), text);
}

export function pageHeader(title, subtitle, ...actions) {
  return h("div.page-header", h("div", h("h1", title), subtitle ? h("p.muted.subtitle", subtitle) : null), h("div.actions", actions));
}

/** A table: columns = [{label, cell(row) → node|text, className}]; rows get rowAttrs(row). */
export function table(columns, rows, { testid, rowAttrs = () => ({}), caption } = {}) {
  return h(
    "div.table-wrap",
    h(
      "table",
      { testid },
      caption ? h("caption.sr-only", caption) : null,
      h("thead", h("tr", columns.map((c) => h("th", { scope: "col", class: c.className }, c.label)))),
      h("tbody", rows.map((row) => h("tr", rowAttrs(row), columns.map((c) => h("td", { class: c.className }, c.cell(row)))))),
    ),
  );
}

/** A definition list from [label, value, testid?, wide?] (empty values left out). */
export function facts(pairs, testid) {
  return h(
    "dl.facts",
    { testid },
    pairs
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([label, value, id, wide]) => h(wide ? "div.fact.wide" : "div.fact", { testid: id }, h("dt", label), h("dd", value))),
  );
}

export function copyButton(text, label = "Copy", testid = "copy") {
  const button = h("button.btn.btn-small.btn-ghost", { type: "button", testid, title: "Copy to clipboard", "aria-label": `${label} to clipboard` }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = h("textarea", { style: "position:fixed;opacity:0" }, text);
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  return button;
}

/** A hash in monospace, shortened, with its full value in a data attribute and a copy button. */
export function digest(value, testid = "digest") {
  if (!value) return h("span.muted", "—");
  return h("span.digest", h("code", { title: value, dataset: { full: value }, testid }, value.length > 20 ? `${value.slice(0, 12)}…${value.slice(-6)}` : value), copyButton(value, "Copy digest", `${testid}-copy`));
}

export function select(id, label, options, value, onchange) {
  return h(
    "label.field",
    { for: id },
    h("span.field-label", label),
    h("select", { id, name: id, testid: id, onchange }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))),
  );
}

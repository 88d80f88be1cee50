// The console's shell: hash routes (#/builds, #/builds/<id>, #/images, #/sources,
// #/operators, #/login), the header's navigation and user, and each view's lifetime (its
// timers and requests end when another view is shown).

import { clearToken, getToken, handleUnauthorized, roleOf, tenantOf, tokenClaims } from "./api.js";
import { renderBuild } from "./build.js";
import { renderBuilds } from "./builds.js";
import { renderImage, renderImages } from "./images.js";
import { renderLogin } from "./login.js";
import { renderOperator, renderOperators } from "./operators.js";
import { renderSource, renderSources } from "./sources.js";
import { h, tick } from "./ui.js";

const ROUTES = [
  [/^\/builds\/([^/]+)$/, renderBuild, "builds"],
  [/^\/builds$/, renderBuilds, "builds"],
  [/^\/images\/([^/]+)$/, renderImage, "images"],
  [/^\/images$/, renderImages, "images"],
  [/^\/sources\/([^/]+)$/, renderSource, "sources"],
  [/^\/sources$/, renderSources, "sources"],
  [/^\/operators\/([^/]+)\/([^/]+)$/, renderOperator, "operators"],
  [/^\/operators$/, renderOperators, "operators"],
  [/^\/login$/, renderLogin, "login"],
];
const TITLES = { builds: "Builds", images: "Images", sources: "Sources", operators: "Operators", login: "Sign in" };

/** The current route: path, its parameters, and the query after "?" in the hash. */
export function currentRoute() {
  const raw = window.location.hash.replace(/^#/, "") || "/builds";
  const [path, search = ""] = raw.split("?");
  return { path: path || "/builds", query: new URLSearchParams(search) };
}

/** What a view is given: its signal (aborted when it goes) and timers cleared with it. */
class ViewContext {
  constructor(query) {
    this.query = query;
    this.controller = new AbortController();
    this.timers = new Set();
    this.cleanups = [];
  }
  get signal() {
    return this.controller.signal;
  }
  get alive() {
    return !this.controller.signal.aborted;
  }
  every(ms, fn) {
    const id = setInterval(() => this.alive && fn(), ms);
    this.timers.add(id);
    return id;
  }
  later(ms, fn) {
    const id = setTimeout(() => {
      this.timers.delete(id);
      if (this.alive) fn();
    }, ms);
    this.timers.add(id);
    return id;
  }
  onLeave(fn) {
    this.cleanups.push(fn);
  }
  end() {
    this.controller.abort();
    for (const id of this.timers) {
      clearInterval(id);
      clearTimeout(id);
    }
    this.timers.clear();
    for (const fn of this.cleanups) fn();
  }
}

let active = null;
let loginNotice = "";

function renderHeader(section) {
  const signedIn = Boolean(getToken());
  const claims = tokenClaims();
  document.body.classList.toggle("signed-out", !signedIn);
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === section;
    link.classList.toggle("active", current);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const user = document.getElementById("user");
  if (!signedIn) {
    user.replaceChildren();
    return;
  }
  const who = [tenantOf(claims), roleOf(claims)].filter(Boolean).join(" · ") || "signed in";
  user.replaceChildren(
    h("span.user-chip", { testid: "user-chip", title: claims.sub || "" }, who),
    h("button.btn.btn-ghost.btn-small#sign-out", { type: "button", testid: "sign-out", onclick: signOut }, "Sign out"),
  );
}

export function signOut(notice = "") {
  clearToken();
  loginNotice = typeof notice === "string" ? notice : "";
  if (window.location.hash === "#/login") route();
  else window.location.hash = "#/login";
}

function expired(claims) {
  return typeof claims.exp === "number" && claims.exp * 1000 < Date.now();
}

async function route() {
  if (active) active.end();
  const { path, query } = currentRoute();
  const main = document.getElementById("view");
  const token = getToken();
  if (path !== "/login" && (!token || expired(tokenClaims(token)))) {
    if (token) {
      clearToken();
      loginNotice = "Your token has expired. Paste a new one.";
    }
    const next = path === "/builds" && ![...query].length ? "" : `?next=${encodeURIComponent(window.location.hash)}`;
    history.replaceState(null, "", `#/login${next}`);
    return route();
  }
  let handler = renderBuilds;
  let section = "builds";
  let params = [];
  for (const [pattern, fn, name] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      handler = fn;
      section = name;
      params = match.slice(1).map(decodeURIComponent);
      break;
    }
  }
  if (section === "login" && token && !loginNotice && !query.get("next")) {
    history.replaceState(null, "", "#/builds");
    return route();
  }
  renderHeader(section);
  document.title = `${TITLES[section]} · Kiln console`;
  const context = new ViewContext(query);
  active = context;
  main.replaceChildren();
  main.dataset.view = section;
  try {
    if (section === "login") {
      await handler(main, context, loginNotice);
      loginNotice = "";
    } else {
      await handler(main, context, ...params);
    }
  } catch (err) {
    if (err.name !== "AbortError" && context.alive) {
      main.append(h("div.banner.banner-error", { role: "alert", testid: "error-banner" }, err.message || String(err)));
    }
  }
  main.focus({ preventScroll: true });
}

// /console (API Gateway drops the slash) becomes /console/, so "#/…" links stay in this page
if (!window.location.pathname.endsWith("/")) {
  history.replaceState(null, "", `${window.location.pathname}/${window.location.search}${window.location.hash}`);
}

handleUnauthorized((error) => {
  signOut(`Kiln refused the token: ${error.message}`);
});

window.addEventListener("hashchange", route);
window.addEventListener("storage", (event) => {
  if (event.key && event.key.startsWith("kiln.console.token") && !getToken()) signOut();
});
setInterval(() => tick(), 15_000);
document.getElementById("sign-out-fallback")?.remove();
route();

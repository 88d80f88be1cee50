// #/sources and #/sources/<id>: Cachito requests (GET /api/v1/requests, /api/v1/requests/{id}),
// each with its state and reason, and its bundle (GET /api/v1/requests/{id}/download, which
// needs the token: fetched, then saved), log, content manifest and SBOM.

import { api, downloadWithToken } from "./api.js";
import {
  badge, emptyState, facts, h, loading, pageHeader, replaceQuery, select, showError, table,
  timeEl,
} from "./ui.js";

const PER_PAGE = 20;
const STATES = [["", "Any state"], ["in_progress", "In progress"], ["complete", "Complete"], ["failed", "Failed"], ["stale", "Stale"]];

function shortRef(ref) {
  return ref && /^[0-9a-f]{40}$/.test(ref) ? ref.slice(0, 10) : ref || "";
}

function bundleButton(request, container) {
  const button = h("button.btn.btn-small", { type: "button", testid: "bundle-download", disabled: request.state !== "complete", title: request.state !== "complete" ? "The bundle exists once the request is complete" : undefined }, "Bundle");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await downloadWithToken(`/api/v1/requests/${request.id}/download`, `cachito-${request.id}.tar.gz`);
      showError(container, "");
    } catch (err) {
      showError(container, `The bundle of request ${request.id} could not be downloaded: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function fileButton(label, path, name, container, testid) {
  const button = h("button.btn.btn-small.btn-ghost", { type: "button", testid }, label);
  button.addEventListener("click", async () => {
    try {
      await downloadWithToken(path, name);
    } catch (err) {
      showError(container, err.message);
    }
  });
  return button;
}

export async function renderSources(main, context) {
  const filters = { state: context.query.get("state") || "" };
  let page = Math.max(1, Number(context.query.get("page")) || 1);
  const list = h("div.list", { testid: "sources-list" }, loading("Loading requests…"));
  const pager = h("div.pager");
  main.append(
    pageHeader("Sources", "Cachito requests: a repository at a commit with every dependency, as one bundle that builds offline."),
    h(
      "form.filters",
      { onsubmit: (e) => e.preventDefault(), "aria-label": "Filter requests" },
      select("filter-state", "State", STATES, filters.state, (event) => {
        filters.state = event.target.value;
        page = 1;
        load();
      }),
      h("div.filters-end", h("button.btn.btn-ghost", { type: "button", testid: "refresh", onclick: () => load() }, "Refresh")),
    ),
    list,
    pager,
  );
  const columns = [
    { label: "Request", cell: (r) => h("a.row-link", { href: `#/sources/${r.id}`, testid: "source-link" }, `#${r.id}`) },
    { label: "Repository", cell: (r) => h("div.cell-main", h("code.small.wrap", r.repo), h("code.muted.small", { title: r.ref }, shortRef(r.ref))) },
    { label: "Package managers", className: "hide-narrow", cell: (r) => h("span.tags", (r.pkg_managers || []).map((p) => badge(p, { tone: "info" }))) },
    { label: "State", cell: (r) => h("div.cell-main", badge(r.state, { testid: "source-state" }), h("span.muted.small.reason", { testid: "source-reason", title: r.state_reason || "" }, r.state_reason || "")) },
    { label: "Updated", cell: (r) => timeEl(r.updated || r.created) },
    { label: "", cell: (r) => bundleButton(r, main) },
  ];

  async function load() {
    replaceQuery("/sources", { ...filters, page: page > 1 ? String(page) : "" });
    const params = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
    if (filters.state) params.set("state", filters.state);
    try {
      const answer = await api(`/api/v1/requests?${params}`, { signal: context.signal });
      const items = answer.items || [];
      const meta = answer.meta || {};
      showError(main, "");
      list.replaceChildren(
        items.length
          ? table(columns, items, { testid: "sources-table", caption: "Cachito requests", rowAttrs: (r) => ({ testid: "source-row", dataset: { requestId: String(r.id), state: r.state } }) })
          : emptyState(filters.state ? "No requests in this state" : "No Cachito requests yet", "POST /api/v1/requests (as atomic-reactor does) and the request appears here."),
      );
      const prev = h("button.btn.btn-small", { type: "button", disabled: !meta.previous, onclick: () => ((page -= 1), load()) }, "← Newer");
      const next = h("button.btn.btn-small", { type: "button", disabled: !meta.next, onclick: () => ((page += 1), load()) }, "Older →");
      pager.replaceChildren(meta.pages > 1 ? h("div.pager-inner", prev, h("span.muted.small", `Page ${meta.page} of ${meta.pages} · ${meta.total} requests`), next) : "");
    } catch (err) {
      if (err.name === "AbortError" || !context.alive) return;
      showError(main, err.message);
      list.replaceChildren(emptyState("Requests could not be loaded", "See the message above."));
    }
  }
  context.every(10_000, () => !document.hidden && load());
  await load();
}

export async function renderSource(main, context, requestId) {
  main.append(h("a.back", { href: "#/sources", testid: "back" }, "← Sources"));
  let request;
  try {
    request = await api(`/api/v1/requests/${encodeURIComponent(requestId)}`, { signal: context.signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    showError(main, err.message);
    main.append(emptyState("This request could not be shown", "It does not exist, or it belongs to another tenant."));
    return;
  }
  const id = request.id;
  const logPane = h("pre.log.log-short", { testid: "source-log", hidden: true });
  const logButton = h("button.btn.btn-small.btn-ghost", { type: "button", testid: "source-log-show" }, "Show log");
  logButton.addEventListener("click", async () => {
    try {
      const text = await api(`/api/v1/requests/${id}/logs`, { signal: context.signal });
      logPane.textContent = typeof text === "string" ? text : JSON.stringify(text, null, 2);
      logPane.hidden = false;
    } catch (err) {
      if (err.name !== "AbortError") showError(main, err.message);
    }
  });
  const packages = Array.isArray(request.packages) ? request.packages : [];
  const dependencies = Array.isArray(request.dependencies) ? request.dependencies : [];
  const env = request.environment_variables || {};
  main.append(
    h(
      "div.page-header",
      h("div", h("h1", `Request #${id} `, badge(request.state, { testid: "source-state" })), h("p.muted.subtitle", h("code", request.repo), " @ ", h("code", shortRef(request.ref)))),
      h(
        "div.actions",
        bundleButton(request, main),
        fileButton("Content manifest", `/api/v1/content-manifest?requests=${id}`, `content-manifest-${id}.json`, main, "content-manifest"),
        fileButton("SBOM", `/api/v1/sbom?requests=${id}&format=cyclonedx-1.6`, `sbom-${id}.cdx.json`, main, "source-sbom"),
      ),
    ),
    request.state_reason ? h(`div.banner.banner-${request.state === "failed" ? "error" : "info"}`, { testid: "source-reason" }, request.state_reason) : "",
    h(
      "div.grid-2",
      h(
        "section.card",
        h("h2", "Request"),
        facts([
          ["Repository", h("code.wrap", request.repo)],
          ["Ref", h("code.wrap", request.ref)],
          ["Package managers", h("span.tags", (request.pkg_managers || []).map((p) => badge(p, { tone: "info" })))],
          ["Flags", (request.flags || []).join(", ")],
          ["Submitted by", request.submitted_by || request.user],
          ["Created", timeEl(request.created)],
          ["Updated", timeEl(request.updated)],
          ["Packages", String(packages.length)],
          ["Dependencies", String(dependencies.length)],
          ["Error", request.error_type ? `${request.error_origin}: ${request.error_type}` : null],
        ]),
      ),
      h(
        "section.card",
        h("h2", "State history"),
        table(
          [
            { label: "State", cell: (s) => badge(s.state) },
            { label: "Reason", cell: (s) => s.state_reason || "" },
            { label: "When", cell: (s) => timeEl(s.updated) },
          ],
          request.state_history || [],
          { testid: "state-history", caption: "State history" },
        ),
      ),
    ),
    Object.keys(env).length
      ? h("section.card", h("h2", "Environment variables"), table([{ label: "Name", cell: ([k]) => h("code", k) }, { label: "Value", cell: ([, v]) => h("code.wrap", String(v)) }], Object.entries(env), { caption: "Environment variables" }))
      : "",
    packages.length
      ? h("section.card", h("h2", "Packages"), table([{ label: "Name", cell: (p) => p.name }, { label: "Type", cell: (p) => badge(p.type, { tone: "info" }) }, { label: "Version", cell: (p) => h("code", p.version || "") }, { label: "Dependencies", className: "num", cell: (p) => String((p.dependencies || []).length) }], packages, { testid: "source-packages", caption: "Packages" }))
      : "",
    h("section.card", h("div.card-header", h("h2", "Log"), h("div.toolbar", logButton)), logPane),
  );
}

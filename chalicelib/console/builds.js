// #/builds: every build of every face in one list (GET /kiln/v1/builds), filtered by face,
// phase, status and arch (kept in the hash, so a filtered list can be shared), refreshed on
// its own every few seconds.

import { api } from "./api.js";
import {
  badge, elapsed, emptyState, formatCost, formatSeconds, h, loading, pageHeader, replaceQuery,
  select, shortId, showError, table, timeEl,
} from "./ui.js";

const REFRESH_MS = 5000;
export const PHASE_TONES = { queued: "muted", running: "run", waiting_on_user: "warn", success: "ok", error: "bad" };
const FACES = [["", "All faces"], ["ims", "IMS"], ["composer", "Composer"], ["cachito", "Cachito"]];
const PHASES = [["", "All phases"], ["queued", "Queued"], ["running", "Running"], ["waiting_on_user", "Waiting on user"], ["success", "Succeeded"], ["error", "Failed"]];
const STATUSES = [
  ["", "Any status"],
  ...["creating", "fetching_image", "fetching_recipe", "waiting_for_repos", "building_image",
    "waiting_on_user", "uploading", "registering", "error", "success"].map((s) => [s, s.replace(/_/g, " ")]),
];
const ARCHES = [["", "All arches"], ["x86_64", "x86_64"], ["aarch64", "aarch64"]];
const FACE_LABELS = { ims: "IMS", composer: "Composer", cachito: "Cachito" };

export function statusBadge(build, testid = "build-status") {
  return badge(build.status, { tone: PHASE_TONES[build.phase], testid, title: build.phase ? `phase: ${build.phase}` : undefined });
}

export function durationOf(build) {
  const total = build.timing && build.timing.total_seconds;
  if (total !== undefined && total !== null) return total;
  return elapsed(build.created, build.finished);
}

function columns() {
  return [
    {
      label: "Build",
      cell: (b) => h("div.cell-main", h("a.row-link", { href: `#/builds/${encodeURIComponent(b.id)}`, testid: "build-link" }, b.name || b.kind || b.id), h("code.muted.small", { title: b.id }, shortId(b.id))),
    },
    { label: "Face", cell: (b) => h("div.cell-main", h("span", FACE_LABELS[b.face] || b.face), h("span.muted.small", b.kind)) },
    { label: "Status", cell: (b) => h("div.cell-main", statusBadge(b), b.status_reason && b.phase === "error" ? h("span.muted.small.reason", { title: b.status_reason }, b.status_reason) : null) },
    { label: "Arch", cell: (b) => b.arch || "—" },
    { label: "Node", className: "hide-narrow", cell: (b) => (b.build_node ? h("code.small", b.build_node) : h("span.muted", "—")) },
    { label: "Created", cell: (b) => timeEl(b.created) },
    { label: "Duration", className: "num", cell: (b) => formatSeconds(durationOf(b)) },
    { label: "Cost", className: "num hide-narrow", cell: (b) => formatCost(b.timing && b.timing.cost) },
    { label: "Cache", className: "hide-narrow", cell: (b) => (b.timing && b.timing.cache ? badge(b.timing.cache) : h("span.muted", "—")) },
  ];
}

export async function renderBuilds(main, context) {
  const q = context.query;
  const filters = { face: q.get("face") || "", phase: q.get("phase") || "", status: q.get("status") || "", arch: q.get("arch") || "" };
  let builds = [];
  let nextMarker = null;
  let lastLoaded = null;
  let drawnKey = null;

  const list = h("div.list", { testid: "builds-list" }, loading("Loading builds…"));
  const updated = h("span.muted.small", { testid: "builds-updated", "aria-live": "off" });
  const auto = h("input#auto-refresh", { type: "checkbox", checked: true, testid: "auto-refresh" });
  const more = h("button.btn", { type: "button", testid: "load-more", hidden: true }, "Load more");
  const refreshButton = h("button.btn.btn-ghost", { type: "button", testid: "refresh" }, "Refresh");

  const onFilter = (name) => (event) => {
    filters[name] = event.target.value;
    replaceQuery("/builds", filters);
    builds = [];
    nextMarker = null;
    drawnKey = null;
    list.replaceChildren(loading("Loading builds…"));
    load();
  };
  const bar = h(
    "form.filters",
    { testid: "build-filters", onsubmit: (e) => e.preventDefault(), "aria-label": "Filter builds" },
    select("filter-face", "Face", FACES, filters.face, onFilter("face")),
    select("filter-phase", "Phase", PHASES, filters.phase, onFilter("phase")),
    select("filter-status", "Status", STATUSES, filters.status, onFilter("status")),
    select("filter-arch", "Arch", ARCHES, filters.arch, onFilter("arch")),
    h("div.filters-end", h("label.check", { for: "auto-refresh" }, auto, " Auto-refresh"), refreshButton),
  );
  const header = pageHeader("Builds", "Every build of every face: IMS jobs, composer images, Cachito requests.");
  main.append(header, bar, list, h("div.list-footer", updated, more));

  function query(extra = {}) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...filters, ...extra })) if (value) params.set(key, value);
    return `/kiln/v1/builds?${params}`;
  }

  function draw() {
    if (!builds.length) {
      const filtered = Object.values(filters).some(Boolean);
      list.replaceChildren(
        filtered
          ? emptyState("No builds match these filters", "Change or clear the filters above to see more.")
          : emptyState("No builds yet", "Builds appear here as soon as an IMS job, a compose or a Cachito request starts one."),
      );
    } else {
      list.replaceChildren(
        table(columns(), builds, {
          testid: "builds-table",
          caption: "Builds",
          rowAttrs: (b) => ({ testid: "build-row", dataset: { buildId: b.id, face: b.face || "", phase: b.phase || "", status: b.status || "" } }),
        }),
      );
    }
    more.hidden = !nextMarker;
    if (lastLoaded) updated.textContent = `${builds.length} build${builds.length === 1 ? "" : "s"} · updated ${lastLoaded.toLocaleTimeString()}`;
  }

  async function load() {
    try {
      const limit = Math.min(200, Math.max(50, builds.length));
      const page = await api(query({ limit: String(limit) }), { signal: context.signal });
      const same = drawnKey !== null && JSON.stringify(page) === drawnKey;
      drawnKey = JSON.stringify(page);
      builds = page.builds || [];
      nextMarker = page.next_marker || null;
      lastLoaded = new Date();
      showError(main, "");
      if (same) updated.textContent = updated.textContent.replace(/updated .*/, `updated ${lastLoaded.toLocaleTimeString()}`);
      else draw(); // redrawn only when something changed, so focus and selection stay
    } catch (err) {
      if (err.name === "AbortError" || !context.alive) return;
      showError(main, err.message);
      if (!builds.length) list.replaceChildren(emptyState("Builds could not be loaded", "See the message above."));
    }
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await api(query({ marker: nextMarker }), { signal: context.signal });
      builds = builds.concat(page.builds || []);
      nextMarker = page.next_marker || null;
      draw();
    } catch (err) {
      if (err.name !== "AbortError") showError(main, err.message);
    } finally {
      more.disabled = false;
    }
  });
  refreshButton.addEventListener("click", load);
  context.every(REFRESH_MS, () => {
    if (auto.checked && !document.hidden) load();
  });
  await load();
}

// #/builds/<id>: one build (GET /kiln/v1/builds/{id}): its facts, where its time went (the
// stages as a timeline), its live log, its artifacts with checksums and downloads, its SBOMs
// and provenance. Polled every 2 s until it ends.

import { api, apiRoot, downloadPresigned } from "./api.js";
import { durationOf, statusBadge } from "./builds.js";
import { logPanel } from "./log.js";
import {
  badge, digest, emptyState, facts, formatBytes, formatCost, formatSeconds, h, loading,
  showError, table, timeEl,
} from "./ui.js";

const POLL_MS = 2000;
const ENDED = new Set(["success", "error"]);
const STAGE_LABELS = { queue_wait: "Queue wait", fetch: "Fetch", resolve: "Resolve", build: "Build", package: "Package", upload: "Upload" };
const INLINE_DOWNLOAD_MAX = 256 * 1024 * 1024; // larger artifacts go straight to the browser

export async function renderBuild(main, context, buildId) {
  const path = `/kiln/v1/builds/${encodeURIComponent(buildId)}`;
  main.append(h("a.back", { href: "#/builds", testid: "back" }, "← Builds"), loading("Loading the build…"));
  let build;
  try {
    build = await api(path, { signal: context.signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    main.querySelector(".loading")?.remove();
    showError(main, err.message);
    main.append(emptyState("This build could not be shown", err.status === 404 ? "It does not exist, or it belongs to another tenant." : "See the message above."));
    return;
  }
  main.querySelector(".loading")?.remove();

  const header = h("div.page-header");
  const reason = h("div");
  const summary = h("section.card", { "aria-labelledby": "summary-title" });
  const stages = h("section.card", { "aria-labelledby": "stages-title", testid: "stages-card" });
  const artifacts = h("section.card", { "aria-labelledby": "artifacts-title", testid: "artifacts-card" });
  const log = logPanel(context, buildId);
  main.append(header, reason, h("div.grid-2", summary, stages), log.element, artifacts);
  main.dataset.buildId = buildId;

  const drawn = {};
  function part(name, value, draw) {
    const key = JSON.stringify(value);
    if (drawn[name] !== key) {
      drawn[name] = key;
      draw(value);
    }
  }

  function drawAll() {
    main.dataset.phase = build.phase || "";
    part("header", [build.name, build.status, build.phase], () => drawHeader(header, build, context, refresh));
    part("reason", [build.status_reason, build.phase], () =>
      reason.replaceChildren(build.status_reason ? h(`div.banner.banner-${build.phase === "error" ? "error" : "info"}`, { testid: "status-reason" }, build.status_reason) : ""),
    );
    part("summary", [build, Math.floor(Date.now() / 5000)], () => drawSummary(summary, build));
    part("stages", [build.stages, build.timing, build.steps], () => drawStages(stages, build));
    part("artifacts", [build.artifacts && build.artifacts.map((a) => [a.name, a.sha256]), build.sbom && Object.keys(build.sbom), Boolean(build.provenance), build.phase], () => drawArtifacts(artifacts, build));
  }

  async function refresh() {
    try {
      build = await api(path, { signal: context.signal });
      showError(main, "");
      drawAll();
    } catch (err) {
      if (err.name !== "AbortError" && context.alive) showError(main, err.message);
    }
    if (context.alive && !ENDED.has(build.phase)) context.later(POLL_MS, refresh);
  }

  drawAll();
  log.start();
  if (!ENDED.has(build.phase)) context.later(POLL_MS, refresh);
}

function drawHeader(header, build, context, refresh) {
  const actions = [];
  if (!ENDED.has(build.phase)) {
    const cancel = h("button.btn.btn-danger", { type: "button", testid: "cancel-build" }, "Cancel build");
    cancel.addEventListener("click", async () => {
      if (!window.confirm(`Cancel build ${build.name || build.id}?`)) return;
      cancel.disabled = true;
      try {
        await api(`/kiln/v1/builds/${encodeURIComponent(build.id)}/cancel`, { method: "POST", signal: context.signal });
        refresh();
      } catch (err) {
        if (err.name !== "AbortError") showError(document.getElementById("view"), err.message);
        cancel.disabled = false;
      }
    });
    actions.push(cancel);
  }
  header.replaceChildren(
    h(
      "div",
      h("h1", { testid: "build-title" }, build.name || build.id, " ", statusBadge(build)),
      h("p.muted.subtitle", h("code", { testid: "build-id" }, build.id), " · ", build.kind, " · ", build.face),
    ),
    h("div.actions", actions),
  );
}

function drawSummary(card, build) {
  const timing = build.timing || {};
  const stages = timing.stages || {};
  const queueWait = stages.queue_wait ?? (build.stages || []).find((s) => s.name === "queue_wait")?.seconds;
  card.replaceChildren(
    h("h2#summary-title", "Summary"),
    facts(
      [
        ["Status", h("span", build.status.replace(/_/g, " "), build.phase !== build.status ? h("span.muted", ` (${build.phase})`) : ""), "fact-status"],
        ["Face", `${build.face} · ${build.kind}`],
        ["Arch", build.arch],
        ["Tenant", build.tenant],
        ["Build node", build.build_node ? h("code", build.build_node) : null],
        ["Created", timeEl(build.created)],
        ["Finished", build.finished ? timeEl(build.finished) : null],
        [ENDED.has(build.phase) ? "Duration" : "Running for", formatSeconds(durationOf(build)), "fact-duration"],
        ["Queue wait", queueWait !== undefined ? formatSeconds(queueWait) : null, "fact-queue-wait"],
        ["Instance time", timing.instance_seconds !== undefined ? formatSeconds(timing.instance_seconds) : null],
        ["Cost", timing.cost ? formatCost(timing.cost) : null, "fact-cost"],
        ["Cache", timing.cache ? badge(timing.cache, { testid: "cache" }) : null, "fact-cache"],
        ["Image", build.image_id ? h("code", build.image_id) : null, "fact-image", true],
        ["Face record", build.face_url ? h("code.small", build.face_url) : null, "fact-face-url", true],
      ],
      "build-facts",
    ),
  );
}

function stageList(build) {
  if (Array.isArray(build.stages) && build.stages.length) return build.stages;
  const stages = (build.timing && build.timing.stages) || {};
  return Object.entries(stages).map(([name, seconds]) => ({ name, seconds }));
}

// While it runs: the statuses it went through (GET /kiln/v1/builds/{id} "steps"), the last one
// still going.
function stepList(steps) {
  return h(
    "ol.steps",
    { testid: "steps", "aria-label": "Progress" },
    steps.map((step, index) =>
      h(
        `li.step${index === steps.length - 1 ? ".step-current" : ".step-done"}`,
        { dataset: { status: step.status }, testid: "step" },
        h("span.step-name", step.status.replaceAll("_", " ")),
        h("span.num", step.seconds == null ? "" : formatSeconds(step.seconds)),
      ),
    ),
  );
}

function drawStages(card, build) {
  const stages = stageList(build).filter((s) => Number(s.seconds) >= 0);
  const total = stages.reduce((sum, s) => sum + Number(s.seconds), 0);
  card.replaceChildren(h("h2#stages-title", "Stages"));
  if (!stages.length) {
    const steps = Array.isArray(build.steps) ? build.steps : [];
    if (steps.length && !ENDED.has(build.phase)) {
      card.append(stepList(steps), h("p.muted.small", "Seconds per stage (fetch, build, package…) come with the host's answer."));
      return;
    }
    card.append(emptyState(ENDED.has(build.phase) ? "No stages recorded" : "Stages appear when the build ends", "Each stage's seconds are reported by the build host with its answer.", "stages-empty"));
    return;
  }
  const bar = h(
    "div.timeline",
    { testid: "stages", role: "img", "aria-label": stages.map((s) => `${STAGE_LABELS[s.name] || s.name} ${formatSeconds(s.seconds)}`).join(", ") },
    stages.map((s) => {
      const share = total > 0 ? (Number(s.seconds) / total) * 100 : 100 / stages.length;
      return h(
        `div.segment.stage-${s.name}`,
        { style: `flex-grow:${Math.max(share, 0.5)}`, title: `${STAGE_LABELS[s.name] || s.name}: ${formatSeconds(s.seconds)}`, testid: "stage", dataset: { stage: s.name } },
        share > 12 ? h("span", STAGE_LABELS[s.name] || s.name) : "",
      );
    }),
  );
  const rows = table(
    [
      { label: "Stage", cell: (s) => h("span.stage-name", h(`span.swatch.stage-${s.name}`, { "aria-hidden": "true" }), STAGE_LABELS[s.name] || s.name) },
      { label: "Time", className: "num", cell: (s) => formatSeconds(s.seconds) },
      { label: "Share", className: "num", cell: (s) => (total > 0 ? `${Math.round((Number(s.seconds) / total) * 100)} %` : "—") },
    ],
    stages,
    { testid: "stages-table", caption: "Stages", rowAttrs: (s) => ({ dataset: { stage: s.name } }) },
  );
  card.append(bar, rows, h("p.muted.small", `Total ${formatSeconds(build.timing?.total_seconds ?? total)}`));
}

function downloadLink(artifact) {
  const link = h(
    "a.btn.btn-small",
    { href: artifact.download_url, download: artifact.name, target: "_blank", rel: "noopener", testid: "artifact-download" },
    "Download",
  );
  if (Number(artifact.size) <= INLINE_DOWNLOAD_MAX) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      downloadPresigned(artifact.download_url, artifact.name);
    });
  }
  return link;
}

function drawArtifacts(card, build) {
  card.replaceChildren(h("h2#artifacts-title", "Artifacts"));
  const list = build.artifacts || [];
  if (!list.length) {
    const text = build.phase === "error" ? "This build failed, so it published nothing." : "Artifacts are listed once the build has succeeded.";
    card.append(emptyState("No artifacts", text, "artifacts-empty"));
  } else {
    card.append(
      table(
        [
          { label: "Name", cell: (a) => h("span.artifact-name", a.name) },
          { label: "Type", className: "hide-narrow", cell: (a) => h("code.small", a.type || "—") },
          { label: "Size", className: "num", cell: (a) => formatBytes(a.size) },
          { label: "SHA-256", cell: (a) => digest(a.sha256, "artifact-sha256") },
          { label: "", cell: (a) => downloadLink(a) },
        ],
        list,
        { testid: "artifacts-table", caption: "Artifacts", rowAttrs: (a) => ({ testid: "artifact-row", dataset: { name: a.name, sha256: a.sha256 || "", size: String(a.size ?? "") } }) },
      ),
    );
  }
  const proofs = [];
  for (const [format, url] of Object.entries(build.sbom || {})) {
    proofs.push(h("a.proof", { href: url, target: "_blank", rel: "noopener", testid: `sbom-${format}` }, `SBOM (${format})`));
  }
  if (build.provenance) {
    proofs.push(h("a.proof", { href: build.provenance, target: "_blank", rel: "noopener", testid: "provenance" }, "Provenance (provenance.dsse.json)"));
    proofs.push(h("a.proof.muted", { href: `${apiRoot()}/kiln/v1/provenance/keys`, target: "_blank", rel: "noopener" }, "Verification keys"));
  }
  if (proofs.length) card.append(h("div.proofs", { testid: "proofs" }, h("span.muted.small", "Proofs: "), proofs));
}

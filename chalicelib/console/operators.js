// #/operators and #/operators/<namespace>/<package>: OMPS releases in Kiln's app registry,
// read as Quay's appregistry API serves them: GET /cnr/api/v1/packages?namespace=<organization>
// and GET /cnr/api/v1/packages/{namespace}/{package}; a release's tar.gz through its /pull
// route and its OLM bundle through /olm-bundle (both fetched with the token, then saved).

import { api, downloadWithToken } from "./api.js";
import {
  badge, digest, emptyState, formatBytes, h, loading, pageHeader, replaceQuery, showError,
  table, timeEl,
} from "./ui.js";

const ORG_KEY = "kiln.console.organization";
const CNR = "/cnr/api/v1/packages";

/** "application/vnd.cnr.package-manifest.helm.v0.json" → "helm" */
export function shortMediaType(mediaType) {
  const match = /package-manifest\.(.+)\.v\d+\.json$/.exec(mediaType || "");
  return match ? match[1] : mediaType || "helm";
}

function packagePath(ns, pkg) {
  return `${CNR}/${encodeURIComponent(ns)}/${encodeURIComponent(pkg)}`;
}

export async function renderOperators(main, context) {
  const org = (context.query.get("org") || localStorage.getItem(ORG_KEY) || "").trim();
  const input = h("input#org-input", { type: "text", name: "organization", value: org, testid: "org-input", placeholder: "e.g. demo-org", autocomplete: "off", required: true });
  const list = h("div.list", { testid: "operators-list" });
  const form = h(
    "form.filters",
    { testid: "org-form", "aria-label": "Organization" },
    h("label.field", { for: "org-input" }, h("span.field-label", "Organization"), input),
    h("div.filters-end", h("button.btn.btn-primary", { type: "submit", testid: "org-show" }, "Show operators")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show(input.value.trim());
  });
  main.append(pageHeader("Operators", "OMPS releases: operator manifests pushed to an organization, served as Quay's appregistry."), form, list);

  const columns = [
    { label: "Package", cell: (p) => h("a.row-link", { href: `#/operators/${p.name.split("/").map(encodeURIComponent).join("/")}`, testid: "operator-link" }, p.name) },
    { label: "Latest", cell: (p) => h("code", { testid: "operator-default" }, p.default || "—") },
    { label: "Releases", className: "hide-narrow", cell: (p) => h("span.muted.small", (p.releases || []).slice(0, 6).join(", ") + ((p.releases || []).length > 6 ? ", …" : "")) },
    { label: "Media types", className: "hide-narrow", cell: (p) => h("span.tags", (p.manifests || []).map((m) => badge(m, { tone: "info" }))) },
    { label: "Visibility", cell: (p) => badge(p.visibility) },
    { label: "Updated", cell: (p) => timeEl(p.updated_at) },
  ];

  async function show(namespace) {
    replaceQuery("/operators", { org: namespace });
    if (!namespace) {
      list.replaceChildren(emptyState("Choose an organization", "Type the organization OMPS pushed to (the <organization> of /v2/<organization>/zipfile) to see its operators.", "operators-empty"));
      return;
    }
    localStorage.setItem(ORG_KEY, namespace);
    list.replaceChildren(loading(`Loading ${namespace}…`));
    try {
      const packages = await api(`${CNR}?namespace=${encodeURIComponent(namespace)}`, { signal: context.signal });
      showError(main, "");
      list.replaceChildren(
        packages.length
          ? table(columns, packages, { testid: "operators-table", caption: `Operators of ${namespace}`, rowAttrs: (p) => ({ testid: "operator-row", dataset: { name: p.name } }) })
          : emptyState(`No operators in ${namespace}`, "Push an operator's manifest zip with OMPS (POST /omps/v2/<organization>/zipfile) and its releases appear here.", "operators-empty"),
      );
    } catch (err) {
      if (err.name === "AbortError" || !context.alive) return;
      showError(main, err.message);
      list.replaceChildren();
    }
  }
  await show(org);
}

export async function renderOperator(main, context, namespace, name) {
  main.append(h("a.back", { href: `#/operators?org=${encodeURIComponent(namespace)}`, testid: "back" }, `← ${namespace}`));
  let releases;
  try {
    releases = await api(packagePath(namespace, name), { signal: context.signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    showError(main, err.message);
    main.append(emptyState("This operator could not be shown", "It does not exist, or you may not read it."));
    return;
  }
  const download = (release, kind) => {
    const type = shortMediaType(release.mediaType);
    const suffix = kind === "bundle" ? "olm-bundle" : "pull";
    const file = kind === "bundle" ? `${name}-${release.release}-olm-bundle.tar.gz` : `${namespace}_${name}_${release.release}.tar.gz`;
    const button = h("button.btn.btn-small" + (kind === "bundle" ? ".btn-ghost" : ""), { type: "button", testid: kind === "bundle" ? "release-bundle" : "release-download" }, kind === "bundle" ? "OLM bundle" : "Download");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await downloadWithToken(`${packagePath(namespace, name)}/${encodeURIComponent(release.release)}/${encodeURIComponent(type)}/${suffix}`, file);
        showError(main, "");
      } catch (err) {
        showError(main, err.message);
      } finally {
        button.disabled = false;
      }
    });
    return button;
  };
  main.append(
    h("div.page-header", h("div", h("h1", { testid: "operator-title" }, `${namespace}/${name}`), h("p.muted.subtitle", `${releases.length} release${releases.length === 1 ? "" : "s"}`))),
    h(
      "section.card",
      h("h2", "Releases"),
      releases.length
        ? table(
            [
              { label: "Release", cell: (r) => h("code", r.release) },
              { label: "Media type", className: "hide-narrow", cell: (r) => badge(shortMediaType(r.mediaType), { tone: "info" }) },
              { label: "Size", className: "num", cell: (r) => formatBytes(r.content && r.content.size) },
              { label: "Content digest", cell: (r) => digest(r.content && r.content.digest, "release-digest") },
              { label: "Created", cell: (r) => timeEl(r.created_at) },
              { label: "", cell: (r) => h("span.row-actions", download(r, "pull"), download(r, "bundle")) },
            ],
            releases,
            { testid: "releases-table", caption: "Releases", rowAttrs: (r) => ({ testid: "release-row", dataset: { release: r.release } }) },
          )
        : emptyState("No releases", "Every release of this operator was deleted."),
    ),
  );
}

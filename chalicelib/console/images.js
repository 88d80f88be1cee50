// #/images and #/images/<id>: Glance's image registry (GET /v2/images, GET /v2/images/{id}),
// with each image's data downloaded through GET /v2/images/{id}/file. That route needs the
// token, so the console fetches it and hands the browser the bytes.

import { api, downloadWithToken } from "./api.js";
import {
  badge, digest, emptyState, facts, formatBytes, h, loading, pageHeader, replaceQuery, select,
  shortId, showError, table, timeEl,
} from "./ui.js";

const VISIBILITIES = [["", "Mine and shared"], ["all", "All I may see"], ["private", "Private"], ["shared", "Shared"], ["public", "Public"], ["community", "Community"]];
const STATUSES = [["", "Any status"], ...["active", "queued", "saving", "importing", "uploading", "deactivated", "killed"].map((s) => [s, s])];
const CORE = new Set([
  "id", "name", "status", "visibility", "protected", "os_hidden", "disk_format", "container_format",
  "min_disk", "min_ram", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
  "owner", "tags", "created_at", "updated_at", "self", "file", "schema", "locations", "direct_url",
]);

function fileName(image) {
  const base = (image.name || image.id).replace(/[^\w.-]+/g, "_");
  const ext = image.disk_format && !base.endsWith(`.${image.disk_format}`) ? `.${image.disk_format}` : "";
  return base + ext;
}

/** A button that downloads the image's data with the token, showing its progress. */
export function imageDownloadButton(image, container) {
  const label = image.size ? `Download (${formatBytes(image.size)})` : "Download";
  const button = h("button.btn.btn-small", { type: "button", testid: "image-download", disabled: image.status !== "active", title: image.status !== "active" ? `No data to download while ${image.status}` : undefined }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await downloadWithToken(`/v2/images/${encodeURIComponent(image.id)}/file`, fileName(image), (got, total) => {
        button.textContent = total ? `Downloading ${Math.floor((got / total) * 100)} %` : `Downloading ${formatBytes(got)}`;
      });
      button.textContent = "Downloaded";
      button.dataset.done = "true";
      showError(container, "");
    } catch (err) {
      showError(container, `The download of ${image.name || image.id} failed: ${err.message}`);
      button.textContent = label;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export async function renderImages(main, context) {
  const filters = { visibility: context.query.get("visibility") || "", status: context.query.get("status") || "" };
  let images = [];
  let next = null;
  const list = h("div.list", { testid: "images-list" }, loading("Loading images…"));
  const more = h("button.btn", { type: "button", testid: "images-more", hidden: true }, "Load more");
  const onFilter = (name) => (event) => {
    filters[name] = event.target.value;
    replaceQuery("/images", filters);
    list.replaceChildren(loading("Loading images…"));
    load();
  };
  main.append(
    pageHeader("Images", "Glance's image registry: images uploaded, imported or built by Kiln."),
    h(
      "form.filters",
      { onsubmit: (e) => e.preventDefault(), "aria-label": "Filter images" },
      select("filter-visibility", "Visibility", VISIBILITIES, filters.visibility, onFilter("visibility")),
      select("filter-image-status", "Status", STATUSES, filters.status, onFilter("status")),
      h("div.filters-end", h("button.btn.btn-ghost", { type: "button", testid: "refresh", onclick: () => load() }, "Refresh")),
    ),
    list,
    h("div.list-footer", h("span"), more),
  );

  const columns = [
    { label: "Name", cell: (i) => h("div.cell-main", h("a.row-link", { href: `#/images/${encodeURIComponent(i.id)}`, testid: "image-link" }, i.name || "(no name)"), h("code.muted.small", { title: i.id }, shortId(i.id))) },
    { label: "Status", cell: (i) => badge(i.status, { testid: "image-status" }) },
    { label: "Format", className: "hide-narrow", cell: (i) => [i.disk_format, i.container_format].filter(Boolean).join(" / ") || "—" },
    { label: "Size", className: "num", cell: (i) => formatBytes(i.size) },
    { label: "Visibility", className: "hide-narrow", cell: (i) => badge(i.visibility) },
    { label: "Hash", className: "hide-narrow", cell: (i) => digest(i.os_hash_value, "image-hash") },
    { label: "Created", cell: (i) => timeEl(i.created_at) },
    { label: "", cell: (i) => imageDownloadButton(i, main) },
  ];

  function draw() {
    list.replaceChildren(
      images.length
        ? table(columns, images, { testid: "images-table", caption: "Images", rowAttrs: (i) => ({ testid: "image-row", dataset: { imageId: i.id, name: i.name || "" } }) })
        : emptyState("No images", "Upload one with the glance or openstack client, import one from a URL, or build one: it appears here."),
    );
    more.hidden = !next;
  }

  function query(marker) {
    const params = new URLSearchParams({ limit: "50" });
    for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
    if (marker) params.set("marker", marker);
    return `/v2/images?${params}`;
  }

  async function load(marker) {
    try {
      const page = await api(query(marker), { signal: context.signal });
      images = marker ? images.concat(page.images || []) : page.images || [];
      next = page.next ? new URLSearchParams(page.next.split("?")[1] || "").get("marker") : null;
      showError(main, "");
      draw();
    } catch (err) {
      if (err.name === "AbortError" || !context.alive) return;
      showError(main, err.message);
      if (!images.length) list.replaceChildren(emptyState("Images could not be loaded", "See the message above."));
    }
  }
  more.addEventListener("click", () => load(next));
  await load();
}

export async function renderImage(main, context, imageId) {
  main.append(h("a.back", { href: "#/images", testid: "back" }, "← Images"));
  let image;
  try {
    image = await api(`/v2/images/${encodeURIComponent(imageId)}`, { signal: context.signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    showError(main, err.message);
    main.append(emptyState("This image could not be shown", err.status === 404 ? "It does not exist, or it is not shared with you." : "See the message above."));
    return;
  }
  const actions = [imageDownloadButton(image, main)];
  if (image.kiln_sbom) {
    for (const format of ["cyclonedx-1.6", "spdx-2.3"]) {
      const button = h("button.btn.btn-small.btn-ghost", { type: "button", testid: `image-sbom-${format}` }, `SBOM (${format})`);
      button.addEventListener("click", async () => {
        try {
          await downloadWithToken(`/v2/images/${encodeURIComponent(image.id)}/sbom?format=${format}`, `${fileName(image)}.${format}.json`);
        } catch (err) {
          showError(main, err.message);
        }
      });
      actions.push(button);
    }
  }
  const extra = Object.entries(image).filter(([key]) => !CORE.has(key)).sort(([a], [b]) => a.localeCompare(b));
  main.append(
    h("div.page-header", h("div", h("h1", { testid: "image-title" }, image.name || "(no name)", " ", badge(image.status, { testid: "image-status" })), h("p.muted.subtitle", h("code", image.id))), h("div.actions", actions)),
    h(
      "div.grid-2",
      h(
        "section.card",
        h("h2", "Image"),
        facts(
          [
            ["Size", image.size !== null ? `${formatBytes(image.size)} (${Number(image.size).toLocaleString()} bytes)` : null, "image-size"],
            ["Virtual size", image.virtual_size ? formatBytes(image.virtual_size) : null],
            ["Disk format", image.disk_format],
            ["Container format", image.container_format],
            ["Visibility", badge(image.visibility)],
            ["Protected", image.protected ? "yes" : "no"],
            ["Owner", image.owner],
            ["Minimum disk / RAM", `${image.min_disk || 0} GB / ${image.min_ram || 0} MB`],
            ["Tags", image.tags && image.tags.length ? h("span.tags", image.tags.map((t) => badge(t, { tone: "info" }))) : null],
            ["Created", timeEl(image.created_at)],
            ["Updated", timeEl(image.updated_at)],
          ],
          "image-facts",
        ),
      ),
      h(
        "section.card",
        h("h2", "Checksums"),
        facts(
          [
            [image.os_hash_algo ? `Hash (${image.os_hash_algo})` : "Hash", digest(image.os_hash_value, "image-os-hash"), "image-os-hash-value"],
            ["Checksum (MD5)", digest(image.checksum, "image-checksum"), "image-checksum-value"],
          ],
          "image-checksums",
        ),
        h("h2", "Properties"),
        extra.length
          ? table(
              [
                { label: "Property", cell: ([key]) => h("code", key) },
                { label: "Value", cell: ([, value]) => h("span.prop-value", typeof value === "object" ? JSON.stringify(value) : String(value)) },
              ],
              extra,
              { testid: "image-properties", caption: "Properties" },
            )
          : h("p.muted", { testid: "image-properties-empty" }, "No extra properties."),
      ),
    ),
  );
}

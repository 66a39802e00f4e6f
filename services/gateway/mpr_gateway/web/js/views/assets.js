// Assets: browse the input bucket's registered media by key prefix.

import { api, query } from "../api.js";
import { fill, h } from "../dom.js";
import { age, bytes, clock } from "../format.js";

const PAGE = 50;

export async function renderAssets(view, ctx) {
  const prefix = ctx.query.get("prefix") || "";
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const input = h("input", { id: "prefix", name: "prefix", value: prefix, placeholder: "key prefix, e.g. uploads/", size: 32 });
  const form = h("form", { class: "inline" }, h("label", {}, "Prefix", input), h("button", { type: "submit" }, "Browse"));
  const scan = h("button", { type: "button", title: "Register objects already in the input bucket" }, "Scan bucket");
  let cursor = null;

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.navigate(`#/assets${query({ prefix: input.value })}`);
  });
  scan.addEventListener("click", async () => {
    scan.disabled = true;
    try {
      const result = await api("/api/assets/scan", { method: "POST", body: { prefix } });
      ctx.flash(`Scan: ${result.found} found, ${result.registered} new, ${result.skipped} known.`);
      reload();
    } catch (exc) {
      if (exc.status !== 401) ctx.flash(exc.message);
    } finally {
      scan.disabled = false;
    }
  });

  fill(view,
    h("h1", {}, "Assets"),
    h("div", { class: "toolbar" }, form, scan, h("a", { href: "#/upload" }, "Upload files")),
    h("table", { id: "assets" },
      h("thead", {}, h("tr", {}, ["Key", "Type", "Size", "Duration", "Probe", "Added"].map((t) => h("th", {}, t)))),
      body),
    h("p", {}, more));

  function row(a) {
    return h("tr", { dataset: { assetId: a.id } },
      h("td", { class: "source" }, h("a", { href: `#/assets/${a.id}` }, a.key)),
      h("td", {}, a.media_type),
      h("td", {}, bytes(a.size_bytes)),
      h("td", {}, clock(a.duration_seconds)),
      h("td", {}, a.probe_status),
      h("td", { title: a.created_at }, age(a.created_at)));
  }

  async function load() {
    const page = await api(`/api/assets${query({ prefix, limit: PAGE, cursor })}`);
    body.append(...page.items.map(row));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    if (!body.children.length) {
      body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" },
        prefix ? "No assets under this prefix." : "No assets yet: upload a file or scan the bucket.")));
    }
  }

  function reload() {
    cursor = null;
    fill(body);
    return load().catch((exc) => exc.status !== 401 && ctx.flash(exc.message));
  }

  let pending = null;
  ctx.live((type) => {
    if (!type.startsWith("asset.") || pending) return;
    pending = setTimeout(() => { pending = null; reload(); }, 500);
  });
  ctx.onLeave(() => clearTimeout(pending));
  more.addEventListener("click", () => load().catch((exc) => ctx.flash(exc.message)));
  await load();
}

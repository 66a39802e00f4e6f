// Jobs: a live table fed by the SSE stream, filtered by status, paged by cursor.

import { api, query } from "../api.js";
import { badge, fill, h } from "../dom.js";
import { age } from "../format.js";
import { TERMINAL, isStale, jobAfter, progressCell, withEvent } from "./jobrow.js";

const STATUSES = ["", "queued", "running", "completed", "failed", "cancelled"];
const PAGE = 50;

export async function renderJobs(view, ctx) {
  const status = STATUSES.includes(ctx.query.get("status")) ? ctx.query.get("status") : "";
  const jobs = new Map();
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  let cursor = null;

  const select = h("select", { id: "status-filter", "aria-label": "Status" },
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s || "all statuses")));
  select.addEventListener("change", () => ctx.navigate(`#/jobs${query({ status: select.value })}`));

  fill(view,
    h("h1", {}, "Jobs"),
    h("div", { class: "toolbar" }, select, h("a", { href: "#/assets" }, "New job from an asset")),
    h("table", { id: "jobs" },
      h("thead", {}, h("tr", {}, ["Status", "Kind", "Preset", "Source", "Progress", "Worker", "Age"]
        .map((t) => h("th", {}, t)))),
      body),
    h("p", {}, more));

  const matches = (job) => !status || job.status === status;

  function row(job) {
    return h("tr", { dataset: { jobId: job.id, status: job.status } },
      h("td", {}, h("a", { href: `#/jobs/${job.id}` }, badge(job.status))),
      h("td", {}, job.kind),
      h("td", {}, job.preset ?? "—"),
      h("td", { class: "source" },
        job.asset_id ? h("a", { href: `#/assets/${job.asset_id}` }, job.source_key) : job.source_key),
      h("td", {}, progressCell(job)),
      h("td", { class: "mono" }, job.worker ?? "—"),
      h("td", { class: "age", title: job.created_at }, age(job.created_at)));
  }

  function show(job, { prepend = false } = {}) {
    const old = body.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
    if ((!matches(job) && !old) || isStale(job, jobs.get(job.id))) return;
    jobs.set(job.id, job);
    const fresh = row(job);
    if (old) old.replaceWith(fresh);
    else if (prepend) body.prepend(fresh);
    else body.append(fresh);
  }

  async function load() {
    const page = await api(`/api/jobs${query({ status, limit: PAGE, cursor })}`);
    for (const job of page.items) show(job);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    if (!page.items.length && !body.children.length) {
      body.append(h("tr", { class: "empty" }, h("td", { colspan: 7, class: "muted" }, "No jobs yet.")));
    }
  }

  const fetching = new Set();
  async function refetch(id, type, prepend) {
    if (fetching.has(id)) return;
    fetching.add(id);
    try {
      const job = await jobAfter(api, id, type);
      body.querySelector("tr.empty")?.remove();
      show(job, { prepend });
    } catch (exc) {
      if (exc.status !== 401 && exc.status !== 404) ctx.flash(exc.message);
    } finally {
      fetching.delete(id);
    }
  }

  more.addEventListener("click", () => load().catch((exc) => ctx.flash(exc.message)));
  ctx.live((type, data) => {
    if (!type.startsWith("job.") || !data.job_id) return;
    const known = jobs.get(data.job_id);
    if (known && (type === "job.progress" || type === "job.started")) {
      if (TERMINAL.has(known.status)) return;
      show(withEvent(known, type, data));
    } else if (known || type === "job.queued" || !status || status === type.slice(4)) {
      refetch(data.job_id, type, !known);
    }
  });
  ctx.every(10000, () => {
    for (const cell of body.querySelectorAll("td.age")) cell.textContent = age(cell.title);
  });
  await load();
}

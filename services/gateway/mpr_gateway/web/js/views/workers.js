// Workers and queue: live transcoder replicas with their current job, the queue's depth.

import { api } from "../api.js";
import { badge, fill, h, kv } from "../dom.js";
import { age } from "../format.js";

export async function renderWorkers(view, ctx) {
  const queue = h("div", { class: "card", id: "queue" });
  const body = h("tbody");
  fill(view,
    h("h1", {}, "Workers & queue"),
    queue,
    h("table", { id: "workers" },
      h("thead", {}, h("tr", {}, ["Worker", "Status", "Host", "FFmpeg", "Current job", "Last seen", "Up since"].map((t) => h("th", {}, t)))),
      body));

  async function refresh() {
    const [workers, q] = await Promise.all([api("/api/workers"), api("/api/queue")]);
    fill(queue, h("h2", {}, `Queue ${q.queue}`), kv([
      ["Ready messages", String(q.ready)],
      ["Unacknowledged", q.unacked === null ? "—" : String(q.unacked)],
      ["Consumers", String(q.consumers)],
      ["Jobs queued", String(q.jobs?.queued ?? "—")],
      ["Jobs running", String(q.jobs?.running ?? "—")],
    ]));
    fill(body, workers.items.length
      ? workers.items.map((w) => h("tr", { dataset: { worker: w.id } },
        h("td", { class: "mono" }, w.id),
        h("td", {}, badge(w.status === "busy" ? "running" : "idle"), " ", w.status),
        h("td", {}, w.host),
        h("td", { class: "mono" }, w.ffmpeg_version ?? "—"),
        h("td", {}, w.current_job_id ? h("a", { href: `#/jobs/${w.current_job_id}`, class: "mono" }, w.current_job_id.slice(0, 8)) : "—"),
        h("td", {}, age(w.last_seen)),
        h("td", {}, age(w.started_at))))
      : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No live workers: start a transcoder (make dev).")));
  }

  let pending = null;
  const soon = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh().catch(() => {}); }, 500);
  };
  ctx.live((type) => {
    if (type.startsWith("worker.") || type === "job.started" || type === "job.queued" || type === "job.completed") soon();
  });
  ctx.every(5000, () => refresh().catch(() => {}));
  ctx.onLeave(() => clearTimeout(pending));
  await refresh();
}

// One asset: probe details, a thumbnail when a thumbnail job made one, its jobs, a new job.

import { api } from "../api.js";
import { badge, fill, h, kv } from "../dom.js";
import { age, bytes, clock, time } from "../format.js";

export async function renderAsset(view, ctx) {
  const [asset, presets] = await Promise.all([api(`/api/assets/${ctx.id}`), api("/api/presets")]);
  const probe = asset.probe || {};
  const streams = probe.streams || [];
  const thumb = asset.jobs.find((j) => j.kind === "thumbnail" && j.status === "completed" && j.outputs.length);

  fill(view,
    h("h1", {}, asset.key),
    h("div", { class: "grid" },
      h("div", { class: "card" }, kv([
        ["Bucket", asset.bucket], ["Type", asset.media_type], ["Size", bytes(asset.size_bytes)],
        ["Duration", clock(asset.duration_seconds)], ["Container", probe.container_long_name || probe.container],
        ["Bit rate", probe.bit_rate ? `${Math.round(probe.bit_rate / 1000)} kb/s` : null],
        ["Probe", h("span", { id: "probe-status" }, asset.probe_status)], ["Probe error", asset.probe_error],
        ["Added", time(asset.created_at)], ["Status", asset.status],
      ])),
      thumb
        ? h("div", { class: "card" }, h("img", { class: "thumb", id: "thumbnail", alt: `Thumbnail of ${asset.key}`, src: thumb.outputs[0].download_url }))
        : null,
      h("div", { class: "card" }, h("h2", {}, "New job"), newJobForm(asset, presets, ctx))),
    h("h2", {}, "Streams"),
    streams.length ? streamTable(streams) : h("p", { class: "muted" }, "No probe data yet."),
    h("h2", {}, "Jobs"),
    jobTable(asset.jobs));

  ctx.live((type, data) => {
    if (data.asset_id === asset.id && (type === "asset.probed" || type === "asset.updated")) ctx.navigate(location.hash);
  });
}

function streamTable(streams) {
  return h("table", { id: "streams" },
    h("thead", {}, h("tr", {}, ["#", "Type", "Codec", "Profile", "Resolution / channels", "Rate", "Bit rate"].map((t) => h("th", {}, t)))),
    h("tbody", {}, streams.map((s) => h("tr", {},
      h("td", {}, String(s.index ?? "")),
      h("td", {}, s.type ?? ""),
      h("td", {}, s.codec ?? ""),
      h("td", {}, s.profile ?? ""),
      h("td", {}, s.type === "video" ? `${s.width}×${s.height}` : `${s.channels ?? "?"} ch ${s.channel_layout ?? ""}`),
      h("td", {}, s.type === "video" ? `${s.frame_rate ?? "?"} fps` : `${s.sample_rate ?? "?"} Hz`),
      h("td", {}, s.bit_rate ? `${Math.round(s.bit_rate / 1000)} kb/s` : "")))));
}

function jobTable(jobs) {
  if (!jobs.length) return h("p", { class: "muted" }, "No jobs for this asset yet.");
  return h("table", {},
    h("thead", {}, h("tr", {}, ["Status", "Kind", "Preset", "Created"].map((t) => h("th", {}, t)))),
    h("tbody", {}, jobs.map((j) => h("tr", {},
      h("td", {}, h("a", { href: `#/jobs/${j.id}` }, badge(j.status))),
      h("td", {}, j.kind), h("td", {}, j.preset ?? "—"), h("td", {}, age(j.created_at))))));
}

function newJobForm(asset, presets, ctx) {
  const kinds = [...new Set(presets.map((p) => p.kind))];
  const preset = h("select", { id: "preset", name: "preset", required: true },
    kinds.map((kind) => h("optgroup", { label: kind },
      presets.filter((p) => p.kind === kind).map((p) => h("option", { value: p.name, title: p.description }, p.name)))));
  const number = (name, label) => h("label", {}, label,
    h("input", { name, type: "number", min: 0, step: "0.1", size: 6, "data-field": name }));
  const start = number("start", "Start (s, trim)");
  const end = number("end", "End (s, trim)");
  const at = number("at", "At (s, thumbnail)");
  const priority = h("input", { name: "priority", type: "number", min: 0, max: 9, value: 0, size: 3 });
  const submit = h("button", { type: "submit", class: "primary", id: "start-job" }, "Start job");
  const form = h("form", { class: "inline", id: "new-job" },
    h("label", {}, "Preset", preset), start, end, at, h("label", {}, "Priority", priority), submit);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = presets.find((p) => p.name === preset.value);
    const body = { asset_id: asset.id, kind: chosen.kind, preset: chosen.name, priority: Number(priority.value || 0) };
    for (const input of form.querySelectorAll("input[data-field]")) {
      if (input.value !== "") body[input.name] = Number(input.value);
    }
    submit.disabled = true;
    try {
      const job = await api("/api/jobs", { method: "POST", body });
      ctx.navigate(`#/jobs/${job.id}`);
    } catch (exc) {
      if (exc.status !== 401) ctx.flash(exc.message);
      submit.disabled = false;
    }
  });
  return form;
}

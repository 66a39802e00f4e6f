// Upload: drop one or several files; each goes straight to S3 through presigned URLs from
// POST /api/uploads (one PUT, or multipart parts retried one by one), then is completed.

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { bytes } from "../format.js";

const PART_ATTEMPTS = 3;
const PARALLEL_PARTS = 3;

export async function renderUpload(view, ctx) {
  const input = h("input", { type: "file", id: "file-input", multiple: true, hidden: true });
  const prefix = h("input", { id: "key-prefix", placeholder: "optional key prefix, e.g. uploads/", size: 32 });
  const zone = h("div", { class: "drop", id: "drop-zone", tabindex: 0, role: "button" },
    h("p", {}, h("strong", {}, "Drop media files here"), " or click to choose them."),
    h("p", { class: "hint" }, "They go straight to the input bucket and are registered at once."));
  const list = h("div", { class: "uploads", id: "upload-list" });
  const running = new Set();

  fill(view, h("h1", {}, "Upload"), h("div", { class: "toolbar" }, h("label", {}, "Key prefix ", prefix)), zone, list, input);

  const start = (files) => {
    for (const file of files) {
      const item = new UploadItem(file, prefix.value.trim(), ctx);
      list.prepend(item.el);
      running.add(item);
      item.run().finally(() => running.delete(item));
    }
  };
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") input.click(); });
  input.addEventListener("change", () => { start([...input.files]); input.value = ""; });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    start([...(event.dataTransfer?.files || [])]);
  });
  // Leaving the page does not stop uploads that already started; they finish in the background.
}

class UploadItem {
  constructor(file, prefix, ctx) {
    this.file = file;
    this.prefix = prefix;
    this.ctx = ctx;
    this.upload = null;
    this.requests = new Set();
    this.cancelled = false;
    this.loaded = [];
    this.bar = h("div", { class: "fill" });
    this.status = h("span", { class: "muted" }, "waiting");
    this.actions = h("span");
    this.el = h("div", { class: "item", dataset: { filename: file.name, state: "waiting" } },
      h("div", {}, h("div", { class: "source" }, file.name), h("div", { class: "muted" }, bytes(file.size))),
      h("div", { class: "progress" }, h("div", { class: "bar" }, this.bar)),
      h("div", {}, this.status, " ", this.actions));
  }

  state(name, text, cls = "muted") {
    this.el.dataset.state = name;
    this.status.className = cls;
    this.status.textContent = text;
  }

  progress() {
    const done = this.loaded.reduce((a, b) => a + b, 0);
    const percent = this.file.size ? (100 * done) / this.file.size : 100;
    this.bar.style.width = `${Math.min(100, percent)}%`;
    this.state("uploading", `${Math.floor(percent)}% · ${bytes(done)}`);
  }

  async run(overwrite = false) {
    fill(this.actions, this.button("Cancel", () => this.cancel()));
    try {
      const key = this.prefix ? `${this.prefix.replace(/\/?$/, "/")}${this.file.name}` : undefined;
      this.upload = await api("/api/uploads", {
        method: "POST",
        body: { filename: this.file.name, key, size: this.file.size, content_type: this.file.type || undefined, overwrite },
      });
      this.el.dataset.key = this.upload.key;
      this.el.dataset.mode = this.upload.mode;
      let parts;
      if (this.upload.mode === "multipart") parts = await this.multipart();
      else {
        this.loaded = [0];
        await this.put(this.upload.url, this.file, 0);
      }
      this.state("completing", "completing…");
      // Without ETags (an S3 server whose CORS does not expose them) the gateway lists the parts.
      const listed = parts && parts.every((p) => p.etag);
      const done = await api(`/api/uploads/${this.upload.id}/complete`, { method: "POST", body: listed ? { parts } : {} });
      this.bar.style.width = "100%";
      this.state("completed", "uploaded", "ok");
      fill(this.actions, h("a", {
        href: done.asset_id ? `#/assets/${done.asset_id}` : `#/assets?prefix=${encodeURIComponent(done.key)}`,
        class: "asset-link",
      }, "Open asset"));
    } catch (exc) {
      if (this.cancelled) return;
      this.state("failed", exc.message, "error");
      fill(this.actions);
      if (exc.status === 409 && !overwrite) {
        this.actions.append(this.button("Overwrite", () => this.run(true)));
      }
    }
  }

  button(label, onclick) {
    const b = h("button", { type: "button" }, label);
    b.addEventListener("click", onclick);
    return b;
  }

  async multipart() {
    const parts = [...this.upload.parts];
    const size = this.upload.part_size;
    this.loaded = parts.map(() => 0);
    const etags = new Array(parts.length);
    let next = 0;
    const worker = async () => {
      while (next < parts.length) {
        const index = next++;
        const part = parts[index];
        const blob = this.file.slice((part.part_number - 1) * size, part.part_number * size);
        etags[index] = { part_number: part.part_number, etag: await this.putPart(part, blob, index) };
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, parts.length) }, worker));
    return etags;
  }

  /** One part, retried with a fresh URL (POST .../parts) when the network fails mid-part. */
  async putPart(part, blob, index) {
    let url = part.url;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.put(url, blob, index);
      } catch (exc) {
        if (this.cancelled || attempt >= PART_ATTEMPTS || exc.status === 401) throw exc;
        try {
          const fresh = await api(`/api/uploads/${this.upload.id}/parts`, { method: "POST", body: { part_numbers: [part.part_number] } });
          url = (fresh.parts || []).find((p) => p.part_number === part.part_number)?.url || url;
        } catch {
          // the gateway offers no fresh URLs: retry the same one
        }
      }
    }
  }

  /** PUT ``blob`` to a presigned URL with progress; resolves with the ETag. */
  put(url, blob, index) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.requests.add(xhr);
      xhr.open("PUT", url);
      xhr.upload.onprogress = (event) => { this.loaded[index] = event.loaded; this.progress(); };
      xhr.onload = () => {
        this.requests.delete(xhr);
        if (xhr.status >= 200 && xhr.status < 300) {
          this.loaded[index] = blob.size;
          this.progress();
          resolve(xhr.getResponseHeader("ETag"));
        } else {
          const message = (xhr.responseXML?.querySelector("Message")?.textContent) || `S3 answered ${xhr.status}`;
          reject(Object.assign(new Error(message), { status: xhr.status }));
        }
      };
      xhr.onerror = () => { this.requests.delete(xhr); reject(new Error("the upload to S3 failed (network)")); };
      xhr.onabort = () => { this.requests.delete(xhr); reject(new Error("cancelled")); };
      xhr.send(blob);
    });
  }

  async cancel() {
    this.cancelled = true;
    for (const xhr of this.requests) xhr.abort();
    this.state("cancelled", "cancelled");
    fill(this.actions);
    if (this.upload) await api(`/api/uploads/${this.upload.id}`, { method: "DELETE" }).catch(() => {});
  }
}

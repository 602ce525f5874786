// photobox upload page: files and folders, by picker or drag and drop, resumable.
// Protocol (photobox/library/api/uploads.py): POST /api/uploads {name,size,mtime,checksum?}
// then PATCH /api/uploads/{id} with Upload-Offset; after a dropped connection,
// HEAD tells how far the server got and the upload continues from there.
"use strict";
(() => {
  const CHUNK = 8 * 1024 * 1024;
  const PARALLEL = 2;
  const HASH_LIMIT = 64 * 1024 * 1024; // pre-check duplicates by SHA-1 for files up to this size
  const MEDIA = /\.(jpe?g|jfif|png|gif|webp|avif|hei[cf]|hif|tiff?|bmp|dng|cr[23]|nef|nrw|arw|sr[f2]|raf|rw2|orf|pef|srw|x3f|3fr|erf|kdc|mrw|mp4|m4v|mov|qt|3gp|3g2|mts|m2ts|ts|mkv|webm|avi|wmv|mpe?g|insv)$/i;

  const csrf = () => {
    const raw = document.body.getAttribute("hx-headers");
    try { return raw ? JSON.parse(raw)["X-CSRF-Token"] : ""; } catch { return ""; }
  };
  const $ = (id) => document.getElementById(id);
  const list = $("upload-list");
  const rowTemplate = $("upload-row");
  const queue = [];
  let active = 0;
  const totals = { total: 0, done: 0, created: 0, dup: 0, failed: 0 };

  function updateSummary() {
    $("upload-summary").hidden = totals.total === 0;
    $("sum-total").textContent = totals.total;
    $("sum-done").textContent = totals.done;
    $("sum-created").textContent = totals.created;
    $("sum-dup").textContent = totals.dup;
    $("sum-failed").textContent = totals.failed;
    $("sum-progress").max = Math.max(totals.total, 1);
    $("sum-progress").value = totals.done;
  }

  function addFiles(files) {
    for (const file of files) {
      if (!MEDIA.test(file.name) && !/^(image|video)\//.test(file.type)) continue;
      const row = rowTemplate.content.firstElementChild.cloneNode(true);
      row.querySelector(".name").textContent = file.webkitRelativePath || file.relPath || file.name;
      list.appendChild(row);
      queue.push({ file, row });
      totals.total += 1;
    }
    updateSummary();
    pump();
  }

  function pump() {
    while (active < PARALLEL && queue.length) {
      const item = queue.shift();
      active += 1;
      upload(item).finally(() => { active -= 1; totals.done += 1; updateSummary(); pump(); });
    }
  }

  function setStatus(row, text, cls) {
    const s = row.querySelector(".status");
    s.textContent = text;
    row.className = "upload-item" + (cls ? " " + cls : "");
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function api(method, url, { body, headers = {} } = {}) {
    const h = { "X-CSRF-Token": csrf(), ...headers };
    if (body && !(body instanceof Blob) && typeof body !== "string") {
      h["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    return fetch(url, { method, body, headers: h, credentials: "same-origin" });
  }

  async function sha1Hex(file) {
    if (!window.crypto || !crypto.subtle || file.size > HASH_LIMIT) return null; // needs https or localhost
    const digest = await crypto.subtle.digest("SHA-1", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function detail(resp) {
    try { return (await resp.json()).detail || resp.statusText; } catch { return resp.statusText; }
  }

  async function upload({ file, row }) {
    const bar = row.querySelector("progress");
    try {
      setStatus(row, "checking…");
      const checksum = await sha1Hex(file).catch(() => null);
      let resp = await withRetry(row, () => api("POST", "/api/uploads", {
        body: { name: file.name, size: file.size, mtime: file.lastModified, checksum } }));
      if (!resp.ok) throw new Error(await detail(resp));
      let state = await resp.json();
      let offset = state.offset;
      while (state.status === "open") {
        const chunk = file.slice(offset, Math.min(offset + CHUNK, file.size));
        setStatus(row, "uploading");
        resp = await withRetry(row, async () => {
          const r = await api("PATCH", `/api/uploads/${state.id}`, { body: chunk, headers: {
            "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" } });
          if (r.status === 409) return r;
          return r;
        }, async () => {
          // After a network error ask the server how far it got before sending again.
          const h = await api("HEAD", `/api/uploads/${state.id}`);
          if (h.ok) offset = Number(h.headers.get("Upload-Offset"));
        });
        if (resp.status === 409) { offset = Number(resp.headers.get("Upload-Offset")); continue; }
        if (!resp.ok) throw new Error(await detail(resp));
        state = await resp.json();
        offset = state.offset;
        bar.value = file.size ? offset / file.size : 1;
      }
      bar.value = 1;
      if (state.status === "duplicate") { totals.dup += 1; setStatus(row, "already in photobox", "dup"); }
      else { totals.created += 1; setStatus(row, state.warning ? `uploaded (${state.warning})` : "uploaded", "ok"); }
    } catch (err) {
      totals.failed += 1;
      setStatus(row, "failed: " + err.message, "failed");
    }
  }

  // Retry network errors and 5xx (not 507: a full disk does not fix itself) with backoff.
  async function withRetry(row, send, beforeRetry) {
    for (let attempt = 0; ; attempt++) {
      try {
        const resp = await send();
        if (resp.status >= 500 && resp.status !== 507 && attempt < 8) throw new Error(`server error ${resp.status}`);
        return resp;
      } catch (err) {
        if (attempt >= 8) throw err;
        const wait = Math.min(30000, 1000 * 2 ** attempt);
        setStatus(row, `connection lost, retrying in ${Math.round(wait / 1000)} s…`, "retry");
        await sleep(wait);
        if (beforeRetry) { try { await beforeRetry(); } catch { /* still offline */ } }
      }
    }
  }

  // Folders dropped from the desktop arrive as entries: walk them.
  function readEntry(entry, path) {
    return new Promise((resolve) => {
      if (entry.isFile) {
        entry.file((f) => { f.relPath = path + f.name; resolve([f]); }, () => resolve([]));
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        const all = [];
        const next = () => reader.readEntries(async (entries) => {
          if (!entries.length) {
            const nested = await Promise.all(all.map((e) => readEntry(e, path + entry.name + "/")));
            resolve(nested.flat());
          } else { all.push(...entries); next(); }
        }, () => resolve([]));
        next();
      } else resolve([]);
    });
  }

  const zone = $("dropzone");
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("over")));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    const items = Array.from(e.dataTransfer.items || []);
    const entries = items.map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    if (entries.length) addFiles((await Promise.all(entries.map((en) => readEntry(en, "")))).flat());
    else addFiles(Array.from(e.dataTransfer.files));
  });
  $("pick-files").addEventListener("change", (e) => { addFiles(Array.from(e.target.files)); e.target.value = ""; });
  $("pick-folder").addEventListener("change", (e) => { addFiles(Array.from(e.target.files)); e.target.value = ""; });
  window.addEventListener("beforeunload", (e) => { if (active || queue.length) { e.preventDefault(); e.returnValue = ""; } });
  window.photoboxUpload = { addFiles }; // for tests
})();

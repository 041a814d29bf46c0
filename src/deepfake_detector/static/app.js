// The detection page: many images at once, sent in batches within the limits GET /model
// publishes; a results table; explanations one image at a time on request; a report per batch
// (JSON and printable HTML). One video at a time goes to video.js (POST /scan and its
// timeline). Every piece of text from the server or a file name goes into the page as text,
// never as HTML; the page's Content-Security-Policy allows no inline script.
"use strict";

const $ = (id) => document.getElementById(id);
const MB = 1048576;
let card = null;          // GET /model
let entries = [];         // one per chosen file: {file, url, row, explained}
let batchStarted = null;  // when the current batch was sent (ISO time, for the report)

const REASONS = {
  in_band: "P(fake) is too close to the threshold to call",
  out_of_domain: "the image is unlike the model's training data",
};
const ERRORS = {
  not_image: "not an image file (JPEG, PNG, GIF, BMP, TIFF or WebP expected)",
  zero_bytes: "the file is empty",
  truncated: "the image file is cut short",
  unreadable: "the image could not be decoded",
  too_many_pixels: "the image has more pixels than the service accepts",
  too_large: "the file is larger than the service accepts",
  not_sent: "not sent: the service could not be reached",
};
const readableError = (code) => ERRORS[code] || String(code);

// An element with children: strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attrs || {});
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const fmt = (v, digits = 2) => (v === undefined || v === null) ? "–" : Number(v).toFixed(digits);
const text = (v, none) => (v === undefined || v === null || v === "") ? none : String(v);

// "P(fake) 0.39, threshold 0.68: real": against the image threshold unless told another
// (a clip's own threshold).
function verdictText(row, t = card ? card.threshold : null) {
  let digits = 2;  // never "P(fake) 0.68, threshold 0.68: real"
  while (digits < 6 && row.p_fake !== t && fmt(row.p_fake, digits) === fmt(t, digits)) digits++;
  return `P(fake) ${fmt(row.p_fake, digits)}, threshold ${fmt(t, digits)}: ${row.verdict}`;
}

function domainText(row) {
  const trained = text(row.trained_on, "unknown data");
  if (row.domain === "out") return `outside its training data (trained on ${trained})`;
  if (row.domain === "in") return `like its training data (trained on ${trained})`;
  return `trained on ${trained}; no domain check for this model`;
}

// Where the file says it came from (Content Credentials, generator metadata): a signal of
// its own, shown beside the verdict and never mixed into P(fake).
function provenanceNode(found, tag = "div") {
  if (!found) return null;
  const kind = found.source === "c2pa" ? (found.trusted ? "trusted" : found.verified ? "valid"
    : "broken") : found.source ? "unsigned" : "none";
  return el(tag, { className: `provenance ${kind}` }, `Provenance: ${found.summary}` +
    (found.error && found.source ? ` (also: ${found.error})` : ""));
}

async function loadCard() {
  card = await (await fetch("/model")).json();
  const m = card.metrics || {};
  const alias = Array.isArray(card.alias) ? card.alias.map(String).join(", ") : "";
  const band = Array.isArray(card.band) ? card.band : [card.threshold, card.threshold];
  const parts = [
    el("b", {}, text(card.name, "(unnamed)")),
    ` version ${text(card.version, "(file)")}, alias ${alias || "–"} ` +
      `(${text(card.model, "?")} model). `,
    el("b", {}, `Trained on ${text(card.trained_on || card.data_source, "unknown data")}.`),
    ` Test accuracy ${fmt(m.accuracy, 3)}, ROC AUC ${fmt(m.roc_auc, 3)}; calls fake at ` +
      `P(fake) ≥ ${fmt(card.threshold)}, inconclusive from ${fmt(band[0])} to ${fmt(band[1])}.`,
  ];
  if (card.video) {
    parts.push(` Videos: one at a time, up to ${fmt(card.video.max_video_mb, 0)} MB and ` +
      `${fmt(card.video.max_seconds, 0)} s; a clip is called fake at clip P(fake) ≥ ` +
      `${fmt(card.video.threshold)}.`);
  }
  if (card.synthetic_warning) {
    parts.push(el("span", { className: "unreliable" }, " Trained on the built-in synthetic " +
      "faces, not on real photographs: expect real photographs to be out of its domain."));
  }
  $("card").replaceChildren(...parts);
  const trusted = card.provenance ? card.provenance.trust_list : 0;
  $("trust-list").textContent = trusted ? `${trusted} certificate(s), provenance.trust_anchors`
    : "none: its trust list, provenance.trust_anchors, is empty";
}

function detailOf(body) {
  const d = body && body.detail;
  if (typeof d === "string") return d;
  if (d && typeof d.message === "string") return d.message;
  return "the service answered with an error";
}

async function post(url, field, files) {
  const form = new FormData();
  for (const f of files) form.append(field, f);
  const reply = await fetch(url, { method: "POST", body: form });
  let body = null;
  try { body = await reply.json(); } catch (e) { body = { detail: `HTTP ${reply.status}` }; }
  return { reply, body };
}

// post(), waiting out a 503 with Retry-After (the service's slots are full) up to `tries`
// times: onAttempt() before each try, onWait(seconds) before each wait.
async function postRetrying(url, field, files, { onAttempt, onWait }, tries = 3) {
  for (let attempt = 1; ; attempt++) {
    onAttempt();
    const answer = await post(url, field, files);
    if (answer.reply.status !== 503 || attempt >= tries) return answer;
    const wait = Number(answer.reply.headers.get("Retry-After")) || 5;
    onWait(wait);
    await sleep(wait);
  }
}

const VIDEO_TYPES = /\.(mp4|mov|m4v|webm|mkv|avi)$/i;
const isVideo = (file) => (file.type || "").startsWith("video/") || VIDEO_TYPES.test(file.name);

// Batches within the service's limits: files per request and bytes per request; a file past
// the upload limit is not sent at all.
function batches(list) {
  const lim = (card && card.limits) || {};
  const maxFiles = lim.max_files || 100;
  const maxBytes = (lim.max_request_mb || 100) * MB * 0.9;  // room for multipart framing
  const out = [];
  let current = [], bytes = 0;
  for (const entry of list) {
    if (current.length && (current.length >= maxFiles || bytes + entry.file.size > maxBytes)) {
      out.push(current); current = []; bytes = 0;
    }
    current.push(entry); bytes += entry.file.size;
  }
  if (current.length) out.push(current);
  return out;
}

let busy = false;  // one batch (or video) at a time: the file control is disabled meanwhile

// Images go to the table in batches; one video alone goes to the scan (video.js).
async function choose(files) {
  if (busy) return;
  const list = Array.from(files);
  const videos = list.filter(isVideo);
  if (videos.length && list.length > 1) {
    $("error").textContent = "Choose one video at a time, on its own (not with images or " +
      "other videos).";
    return;
  }
  busy = true;
  $("files").disabled = true;
  try {
    await cardReady.catch(() => null);  // the limits /model publishes decide the batches
    if (videos.length) await scanVideo(videos[0]);
    else await scoreBatches(list);
  } finally {
    busy = false;
    $("files").disabled = false;
  }
}

async function scoreBatches(files) {
  $("error").textContent = "";
  $("detail").hidden = true;
  $("video").hidden = true;
  for (const e of entries) URL.revokeObjectURL(e.url);
  entries = Array.from(files, (file) => ({ file, url: URL.createObjectURL(file), row: null,
                                           explained: null }));
  batchStarted = new Date().toISOString();
  const maxUpload = ((card && card.limits && card.limits.max_upload_mb) || 10) * MB;
  const sendable = [];
  for (const e of entries) {
    if (e.file.size > maxUpload) {
      e.row = { file: e.file.name, error: "too_large", verdict: null };
    } else {
      sendable.push(e);
    }
  }
  const progress = $("progress");
  progress.hidden = false; progress.max = entries.length; progress.value = entries.length -
    sendable.length;
  $("results").hidden = false;
  renderRows();
  for (const batch of batches(sendable)) {
    $("status").textContent = `Scoring ${progress.value + batch.length} of ${entries.length}…`;
    let answer;
    try {
      answer = await post("/predict", "files", batch.map((e) => e.file));
    } catch (err) {
      batch.forEach((e) => { e.row = { file: e.file.name, error: "not_sent" }; });
      $("error").textContent = `Could not reach the service: ${err}`;
      progress.value += batch.length; renderRows();
      continue;
    }
    const { reply, body } = answer;
    const rows = reply.ok ? body.results
      : (body && body.detail && Array.isArray(body.detail.results) ? body.detail.results : null);
    if (rows) {
      batch.forEach((e, i) => { e.row = rows[i]; });
    } else {
      batch.forEach((e) => { e.row = { file: e.file.name, error: detailOf(body) }; });
    }
    if (!reply.ok) $("error").textContent = detailOf(body);
    progress.value += batch.length;
    renderRows();
  }
  const scored = entries.filter((e) => e.row && !e.row.error).length;
  $("status").textContent = `Done: ${scored} of ${entries.length} scored.`;
  progress.hidden = true;
}

function renderRows() {
  $("rows").replaceChildren(...entries.map((e, i) => {
    const row = e.row;
    const thumb = el("img", { className: "thumb", src: e.url, alt: `thumbnail of ${e.file.name}` });
    let verdict, face = "–", action = null;
    if (!row) {
      verdict = el("span", {}, "waiting…");
    } else if (row.error) {
      verdict = el("span", { className: "rowerror" }, `Could not score: ${readableError(row.error)}`);
    } else {
      verdict = el("div", {},
        el("div", { className: `verdict ${row.verdict}` }, verdictText(row)),
        row.reason ? el("div", {}, REASONS[row.reason] || row.reason) : null,
        el("div", { className: `domain ${row.domain || ""}` }, domainText(row)),
        provenanceNode(row.provenance));
      face = row.face_found === true ? "found" : row.face_found === false ? "none: whole image"
        : "–";
      action = el("button", { type: "button", textContent: e.explained ? "Show explanation"
        : "Explain" });
      action.addEventListener("click", () => explain(i));
    }
    return el("tr", {}, el("td", {}, thumb), el("td", { className: "file" }, e.file.name),
              el("td", {}, verdict), el("td", {}, face), el("td", {}, action));
  }));
}

const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

// One explanation at a time: the service explains one image per slot and answers 503 with
// Retry-After when they are full; the page waits that long and tries again (3 tries).
let explaining = false;  // one explanation at a time, as the service explains them

// The explanation of `file` (its body), progress and errors shown in `target` meanwhile;
// null when there is none. `url`: /explain, or /explain?framed=true for a scanned frame.
async function requestExplanation(target, file, name, url = "/explain") {
  const say = (words) => target.replaceChildren(el("p", { role: "status" }, words));
  const fail = (words) => { target.replaceChildren(el("p", { className: "rowerror" }, words)); };
  let answer;
  try {
    answer = await postRetrying(url, "file", [file], {
      onAttempt: () => say(`Explaining ${name}… (LIME and Grad-CAM take a few seconds)`),
      onWait: (wait) => say(`The service is busy explaining another image; trying again ` +
        `in ${wait} s…`) });
  } catch (err) {
    fail(`Could not reach the service: ${err}`);
    return null;
  }
  if (!answer.reply.ok) {
    fail(`Explanation unavailable: ${detailOf(answer.body)}`);
    return null;
  }
  return answer.body;
}

async function explain(i) {
  if (explaining) return;
  explaining = true;
  document.querySelectorAll("#rows button").forEach((b) => { b.disabled = true; });
  try {
    await explainOne(i);
  } finally {
    explaining = false;
    document.querySelectorAll("#rows button").forEach((b) => { b.disabled = false; });
  }
}

async function explainOne(i) {
  const e = entries[i];
  const detail = $("detail");
  detail.hidden = false;
  if (!e.explained) {
    e.explained = await requestExplanation(detail, e.file, e.file.name);
    if (!e.explained) return;
    renderRows();
  }
  showExplanation(e);
}

function reliabilityNote(method) {
  const r = card && card.explanations ? card.explanations[method] : null;
  if (!r) return null;
  if (r.reliable) return null;
  return el("p", { className: "unreliable" }, "Not reliable for this model: on fakes with " +
    `known manipulated regions this map hit them ${fmt(100 * r.pointing_game, 0)}% of the ` +
    `time, a random map ${fmt(100 * r.random, 0)}%. Do not read it as evidence.`);
}

function figure(caption, b64, alt, legend, note) {
  return el("figure", {},
    el("img", { alt, src: "data:image/png;base64," + b64 }),
    legend, el("figcaption", {}, caption), note);
}

function legend(kind, left, right) {
  return el("div", {}, el("div", { className: `legend ${kind}`, role: "img",
    ariaLabel: `colour scale from ${left} to ${right}` }),
    el("div", { className: "legend-text" }, el("span", {}, left), el("span", {}, right)));
}

function showExplanation(e) {
  $("detail").replaceChildren(...explanationNodes(e.explained, e.file.name,
    `File sha256 ${text(e.row && e.row.sha256, "–")}.`));
  $("detail").focus();
}

// The maps of one explanation (POST /explain's body) with their legends and notes.
function explanationNodes(x, name, provenance) {
  return [
    el("h2", {}, `Why: ${name}`),
    el("p", { className: `verdict ${x.verdict}` }, verdictText(x)),
    el("p", { className: `domain ${x.domain || ""}` }, domainText(x)),
    el("div", { className: "images" },
      figure("The image as the model saw it (face crop, resized).", x.images.input,
             `${name} as the model saw it`),
      figure("LIME: the regions that pushed the score towards fake most.", x.images.lime_positive,
             "LIME regions that raised P(fake)", null, reliabilityNote("lime")),
      figure("LIME: green regions raised P(fake), red lowered it.", x.images.lime_both,
             "LIME regions: green raised P(fake), red lowered it",
             legend("lime", "towards real", "towards fake"), reliabilityNote("lime")),
      figure("Grad-CAM: where the network's last layer looked (red most, blue least).",
             x.images.gradcam, "Grad-CAM heat map over the face",
             legend("jet", "least", "most"), reliabilityNote("gradcam"))),
    el("p", { className: "note" }, "These maps show what moved the model's score, not proof " +
       `of manipulation. ${provenance}`)];
}

// The report: what a newsroom files with a story.
function report() {
  return {
    created: new Date().toISOString(), batch_started: batchStarted,
    model: card && { name: card.name, version: card.version, alias: card.alias,
                     model: card.model, uri: card.uri, run_id: card.run_id || null,
                     threshold: card.threshold, band: card.band,
                     trained_on: card.trained_on || card.data_source,
                     explanations_reliable: card.explanations || null },
    files: entries.map((e) => ({
      file: e.file.name, size: e.file.size, sha256: e.row ? e.row.sha256 || null : null,
      p_fake: e.row ? e.row.p_fake : null, label: e.row ? e.row.label : null,
      verdict: e.row ? e.row.verdict : null, reason: e.row ? e.row.reason || "" : "",
      domain: e.row ? e.row.domain : null, face_found: e.row ? e.row.face_found : null,
      error: e.row ? e.row.error || "" : "", provenance: e.row ? e.row.provenance || null : null,
      explanation: e.explained ? e.explained.images : null })),
  };
}

function download(name, type, content) {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");

function gradcamNote() {
  const r = card && card.explanations ? card.explanations.gradcam : null;
  return r && !r.reliable ? el("p", {}, "Grad-CAM is not reliable for this model (it hit " +
    `known manipulated regions ${fmt(100 * r.pointing_game, 0)}% of the time, a random map ` +
    `${fmt(100 * r.random, 0)}%): not evidence.`) : el("p", {}, "Grad-CAM: where the " +
    "network looked (red most); what moved the score, not proof.");
}

function htmlReport(r) {
  // Built as a document, then serialised: names and texts are escaped by the DOM.
  const doc = document.implementation.createHTMLDocument("Deepfake detector report");
  const add = (node) => doc.body.append(node);
  const charset = doc.createElement("meta");
  charset.setAttribute("charset", "utf-8");
  doc.head.prepend(charset);
  const style = doc.createElement("style");
  style.textContent = "body{font-family:sans-serif}td,th{border:1px solid #999;padding:4px;" +
    "vertical-align:top;word-break:break-all}table{border-collapse:collapse}img{width:160px}";
  doc.head.append(style);
  const m = r.model || {};
  add(el("h1", {}, "Deepfake detector report"));
  add(el("p", {}, `Created ${r.created}. Model ${text(m.name, "?")} version ` +
    `${text(m.version, "(file)")} (${text(m.model, "?")}), run ${text(m.run_id, "–")}, ` +
    `threshold ${fmt(m.threshold, 4)}, trained on ${text(m.trained_on, "unknown data")}.`));
  const rows = r.files.map((f) => el("tr", {}, el("td", {}, f.file), el("td", {}, text(f.sha256, "–")),
    el("td", {}, f.error ? `error: ${readableError(f.error)}` : f.verdict ? verdictText(f) +
      (f.reason ? ` (${REASONS[f.reason] || f.reason})` : "") : "not scored"),
    el("td", {}, text(f.domain, "–")),
    el("td", {}, f.provenance ? f.provenance.summary : "–"),
    el("td", {}, ...(f.explanation ? [el("img", { src: "data:image/png;base64," +
      f.explanation.input, alt: "input" }), el("img", { src: "data:image/png;base64," +
      f.explanation.gradcam, alt: "Grad-CAM" }), gradcamNote()] : ["–"]))));
  add(el("table", {}, el("tr", {}, ...["file", "sha256", "verdict", "domain", "provenance",
    "explanation"]
    .map((h) => el("th", {}, h))), ...rows));
  return "<!doctype html>\n" + doc.documentElement.outerHTML;
}

$("report-json").addEventListener("click", () =>
  download(`deepfake-report-${stamp()}.json`, "application/json;charset=utf-8",
           JSON.stringify(report(), null, 2)));
$("report-html").addEventListener("click", () =>
  download(`deepfake-report-${stamp()}.html`, "text/html;charset=utf-8", htmlReport(report())));
$("files").addEventListener("change", (ev) => ev.target.files.length && choose(ev.target.files));
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault(); drop.classList.remove("over");
  if (ev.dataTransfer.files.length) choose(ev.dataTransfer.files);
});
const cardReady = loadCard();
cardReady.catch((e) => { $("card").textContent = `model card unavailable: ${e}`; });

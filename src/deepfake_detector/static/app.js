// The detection page. Every piece of text from the server (the model card comes from
// params.yaml and registry tags) goes into the page as text, never as HTML; the page's
// Content-Security-Policy allows no inline script either.
"use strict";

const $ = (id) => document.getElementById(id);
const pct = (p) => (100 * p).toFixed(1) + "%";
let limits = null; // GET /model's "limits": the service's upload caps

// An element with children: strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attrs || {});
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

async function loadCard() {
  const card = await (await fetch("/model")).json();
  limits = card.limits || null;
  const m = card.metrics || {};
  const fmt = (v) => (v === undefined || v === null) ? "–" : Number(v).toFixed(3);
  const text = (v, none) => (v === undefined || v === null || v === "") ? none : String(v);
  const alias = Array.isArray(card.alias) ? card.alias.map(String).join(", ") : "";
  const parts = [
    el("b", {}, text(card.name, "(unnamed)")),
    ` version ${text(card.version, "(file)")}, alias ${alias || "–"} ` +
      `(${text(card.model, "?")} model)`,
    el("br"),
    `trained on: ${text(card.data_source, "unknown")}`,
    el("br"),
    `test accuracy ${fmt(m.accuracy)}, fake recall ${fmt(m.recall)}, ROC AUC ${fmt(m.roc_auc)}; ` +
      `threshold ${fmt(card.threshold)} on calibrated P(fake)`,
  ];
  if (card.synthetic_warning) {
    parts.push(el("p", { className: "warning" }, "Warning: this model was trained on the " +
      "built-in synthetic faces, not on real photographs. Do not trust its verdict on real " +
      "images."));
  }
  $("card").replaceChildren(...parts);
}

function figure(caption, b64) {
  return el("figure", {},
    el("img", { alt: caption, src: "data:image/png;base64," + b64 }),
    el("figcaption", {}, caption));
}

function detailOf(body) {
  const d = body && body.detail;
  if (typeof d === "string") return d;
  if (d && typeof d.message === "string") return d.message;
  return JSON.stringify(d);
}

async function post(url, field, file) {
  const form = new FormData();
  form.append(field, file);
  const reply = await fetch(url, { method: "POST", body: form });
  let body = null;
  try { body = await reply.json(); } catch (e) { body = { detail: `HTTP ${reply.status}` }; }
  return { reply, body };
}

async function send(file) {
  $("error").textContent = "";
  $("result").hidden = true;
  if (limits && file.size > limits.max_upload_mb * 1048576) {
    $("error").textContent = `${file.name} is larger than the service accepts ` +
      `(${limits.max_upload_mb} MB, serve.max_upload_mb)`;
    return;
  }
  let answer;
  try {
    answer = await post("/predict", "files", file);
  } catch (e) {
    $("error").textContent = `Could not reach the service: ${e}`;
    return;
  }
  const { reply, body } = answer;
  const row = reply.ok ? body.results[0] : null;
  if (!row || row.error) {
    $("error").textContent = `Could not score ${file.name}: ` +
      (row ? row.error : detailOf(body));
    return;
  }
  $("verdict").textContent =
    `${row.label} ${pct(row.label === "fake" ? row.p_fake : 1 - row.p_fake)}`;
  $("verdict").className = row.label === "fake" ? "fake" : "real";
  $("detail").textContent = `P(fake) = ${row.p_fake.toFixed(4)}; ` +
    (row.face_found === false ? "no face found: the whole image was scored." :
     row.face_found ? "scored the face found in the image." : "") +
    (row.domain === "out" ? ` Out of domain (score ${row.domain_score}): this image is ` +
     "unlike the model's training data; do not rely on the verdict." : "");
  $("images").textContent = "explaining…";
  $("result").hidden = false;
  let ex;
  try {
    ex = await post("/explain", "file", file);
  } catch (e) {
    $("images").textContent = `explanation unavailable: ${e}`;
    return;
  }
  if (!ex.reply.ok) {
    $("images").textContent = "explanation unavailable: " + detailOf(ex.body);
    return;
  }
  const e = ex.body;
  $("images").replaceChildren(
    figure("the image as the model saw it", e.images.input),
    figure("LIME: regions for fake", e.images.lime_positive),
    figure("LIME: fake (green) / real (red)", e.images.lime_both),
    figure("Grad-CAM", e.images.gradcam));
}

$("file").addEventListener("change", (ev) => ev.target.files[0] && send(ev.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault(); drop.classList.remove("over");
  if (ev.dataTransfer.files[0]) send(ev.dataTransfer.files[0]);
});
loadCard().catch((e) => { $("card").textContent = `model card unavailable: ${e}`; });

// The clipit page: text and image search over the index, zero-shot labels with a heatmap.
// Everything is served by `clipit serve` itself (no CDN), so the page works offline.
"use strict";

const TEXT = {
  it: {
    loading: "caricamento…", ready: "pronto: {n} immagini", search_title: "Cerca nelle immagini",
    query_placeholder: "es. un gatto nero su un divano", search_button: "Cerca",
    image_search_label: "…oppure cerca con un'immagine", classify_title: "Classifica un'immagine",
    classify_image_label: "Immagine", labels_label: "Etichette (una per riga)",
    labels_placeholder: "gatto\ncane\nautomobile", classify_button: "Classifica",
    no_results: "Nessun risultato.", need_image: "Scegli un'immagine.", error: "Errore: {e}",
  },
  en: {
    loading: "loading…", ready: "ready: {n} images", search_title: "Search the images",
    query_placeholder: "e.g. un gatto nero su un divano", search_button: "Search",
    image_search_label: "…or search with an image", classify_title: "Classify an image",
    classify_image_label: "Image", labels_label: "Labels (one per line)",
    labels_placeholder: "gatto\ncane\nautomobile", classify_button: "Classify",
    no_results: "No results.", need_image: "Choose an image.", error: "Error: {e}",
  },
};
let lang = (navigator.language || "it").startsWith("it") ? "it" : "en";
let imageCount = null;
let classification = null;

function t(key, values = {}) {
  return TEXT[lang][key].replace(/\{(\w+)\}/g, (_, name) => values[name]);
}

function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.getElementById("lang").textContent = lang === "it" ? "EN" : "IT";
  if (imageCount !== null) document.getElementById("status").textContent = t("ready", { n: imageCount });
}

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || response.status);
    throw new Error(detail);
  }
  return body;
}

function showResults(results) {
  const grid = document.getElementById("results");
  grid.replaceChildren();
  document.getElementById("search-message").textContent = results.length ? "" : t("no_results");
  for (const hit of results) {
    const figure = document.createElement("figure");
    const link = document.createElement("a");
    link.href = hit.url;
    const img = document.createElement("img");
    img.src = hit.url;
    img.alt = hit.path;
    img.loading = "lazy";
    link.append(img);
    const caption = document.createElement("figcaption");
    caption.textContent = `${hit.rank}. ${hit.score.toFixed(4)} — ${hit.path.split("/").pop()}`;
    figure.append(link, caption);
    grid.append(figure);
  }
}

async function searchText(event) {
  event.preventDefault();
  const q = document.getElementById("query").value;
  const k = document.getElementById("k").value || 12;
  try {
    showResults((await api(`/api/search?q=${encodeURIComponent(q)}&k=${k}`)).results);
  } catch (err) {
    document.getElementById("search-message").textContent = t("error", { e: err.message });
  }
}

async function searchImage() {
  const file = document.getElementById("search-image").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file);
  form.append("k", document.getElementById("k").value || 12);
  try {
    showResults((await api("/api/search", { method: "POST", body: form })).results);
  } catch (err) {
    document.getElementById("search-message").textContent = t("error", { e: err.message });
  }
}

function drawHeatmap(index) {
  const preview = document.getElementById("preview");
  const canvas = document.getElementById("heatmap");
  canvas.width = preview.clientWidth;
  canvas.height = preview.clientHeight;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const grid = classification.results[index].heatmap;
  const rows = grid.length, cols = grid[0].length;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = grid[r][c];  // 0..1: blue (no match) to red (match)
      context.fillStyle = `rgba(${Math.round(255 * v)}, 40, ${Math.round(255 * (1 - v))}, ${0.15 + 0.6 * v})`;
      context.fillRect((c * canvas.width) / cols, (r * canvas.height) / rows, canvas.width / cols + 1, canvas.height / rows + 1);
    }
  }
  document.querySelectorAll("#probabilities li").forEach((li, i) => li.classList.toggle("selected", i === index));
}

async function classify(event) {
  event.preventDefault();
  const file = document.getElementById("classify-image").files[0];
  const message = document.getElementById("classify-message");
  if (!file) { message.textContent = t("need_image"); return; }
  const form = new FormData();
  form.append("image", file);
  form.append("labels", document.getElementById("labels").value);
  try {
    classification = await api("/api/classify", { method: "POST", body: form });
  } catch (err) {
    message.textContent = t("error", { e: err.message });
    return;
  }
  message.textContent = "";
  const list = document.getElementById("probabilities");
  list.replaceChildren();
  classification.results.forEach((result, i) => {
    const li = document.createElement("li");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, Math.round(200 * result.probability))}px`;
    li.append(bar, `${result.label}: ${(100 * result.probability).toFixed(1)}%`);
    li.dataset.probability = result.probability;
    li.addEventListener("click", () => drawHeatmap(i));
    list.append(li);
  });
  const preview = document.getElementById("preview");
  preview.onload = () => drawHeatmap(0);
  preview.src = URL.createObjectURL(file);
}

async function checkHealth() {
  try {
    imageCount = (await api("/api/health")).images;
    applyLanguage();
  } catch (err) {
    setTimeout(checkHealth, 1000);
  }
}

document.getElementById("lang").addEventListener("click", () => { lang = lang === "it" ? "en" : "it"; applyLanguage(); });
document.getElementById("text-search").addEventListener("submit", searchText);
document.getElementById("search-image").addEventListener("change", searchImage);
document.getElementById("classify").addEventListener("submit", classify);
applyLanguage();
checkHealth();

// The dashboard's entry point: hash routes to views, the header (language, sign out), and the rule
// that a view returns a function stopping its timers when the page moves on.
import { apiKey } from "./api.js";
import { alertsView } from "./alerts.js";
import { datasetView, datasetsView } from "./datasets.js";
import { h } from "./dom.js";
import { applyLabels, language, setLanguage, t } from "./i18n.js";
import { jobView } from "./job.js";
import { jobsView } from "./jobs.js";
import { modelView, modelsView } from "./models.js";
import { playgroundView } from "./playground.js";
import { signInView } from "./signin.js";

const ROUTES = [
  [/^#\/datasets$/, datasetsView, "datasets"],
  [/^#\/datasets\/([\w-]+)$/, datasetView, "datasets"],
  [/^#\/jobs$/, jobsView, "jobs"],
  [/^#\/jobs\/([\w-]+)$/, jobView, "jobs"],
  [/^#\/models$/, modelsView, "models"],
  [/^#\/models\/([\w.-]+)(?:\/(\d+))?$/, modelView, "models"],
  [/^#\/playground(?:\/(.+))?$/, playgroundView, "playground"],
  [/^#\/alerts$/, alertsView, "alerts"],
];

const view = document.getElementById("view");
let stop = null;

function render() {
  if (stop) stop();
  stop = null;
  view.replaceChildren();
  applyLabels(document);
  const signedIn = Boolean(apiKey.get());
  document.body.classList.toggle("signed-in", signedIn);
  if (!signedIn) {
    const next = location.hash.startsWith("#/signin") || !location.hash ? "#/jobs" : location.hash;
    signInView(view, { next });
    return;
  }
  const [hash, query] = (location.hash || "#/jobs").split("?");
  const match = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!match) {
    location.hash = "#/jobs";
    return;
  }
  const [pattern, show, section] = match;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.section === section);
  const params = pattern.exec(hash).slice(1).map((part) => part && decodeURIComponent(part));
  stop = show(view, ...params, new URLSearchParams(query)) || null;
}

document.getElementById("language").addEventListener("click", () => {
  setLanguage(language() === "zh" ? "en" : "zh");
  render();
});
document.getElementById("sign-out").addEventListener("click", () => {
  apiKey.clear();
  location.hash = "#/signin";
  render();
});
window.addEventListener("hashchange", render);
// A key that stops working (revoked) sends the user back to sign in, saying why.
window.addEventListener("llmft:unauthorized", () => {
  if (!document.body.classList.contains("signed-in")) return; // the sign-in form shows its own error
  apiKey.clear();
  render();
  view.prepend(h("div", { class: "error", role: "alert" }, t("key_rejected")));
});
render();

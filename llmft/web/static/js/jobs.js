// Jobs: the create form with the knobs people touch, and the list of the tenant's jobs.
import { api } from "./api.js";
import { badge, errorBox, field, fill, h, link, num, table, when } from "./dom.js";
import { t } from "./i18n.js";

export const FINAL = ["succeeded", "failed", "cancelled"];

// Hyperparameters sent only when filled in: an empty box keeps the server's default.
const KNOBS = [
  ["num_epochs", "number", { min: 0, step: "any", placeholder: "auto" }],
  ["max_steps", "number", { min: 1, step: 1, placeholder: "—" }],
  ["learning_rate", "number", { min: 0, step: "any", placeholder: "auto" }],
  ["batch_size", "number", { min: 1, step: 1, placeholder: "auto" }],
  ["logging_steps", "number", { min: 1, step: 1, placeholder: "auto" }],
];

export function jobsView(root, query) {
  const datasets = h("select", { name: "dataset_id", id: "job-dataset", required: true });
  const status = h("div", { class: "status", id: "job-status" });
  const idempotencyKey = randomKey(); // a double click creates one job, not two
  const form = h("form", { class: "card", id: "job-form", onsubmit: create },
    h("h2", {}, t("new_job")),
    h("div", { class: "row" },
      field(t("base_model"), h("input", { name: "base_model", value: "smollm2-135m", required: true })),
      field(t("dataset"), datasets),
      field(t("method"), h("select", { name: "method" },
        ["lora", "full"].map((m) => h("option", { value: m }, t(`method_${m}`))))),
      field(t("suffix"), h("input", { name: "suffix", pattern: "[a-z0-9][a-z0-9._\\-]{0,63}", placeholder: "support-bot" }),
        t("suffix_hint"))),
    h("div", { class: "row" },
      KNOBS.map(([name, type, attrs]) => field(t(name), h("input", { name, type, ...attrs }))),
      field(t("processes"), h("input", { name: "processes", type: "number", min: 1, max: 64, value: 1 }))),
    h("button", { type: "submit" }, t("start_job")), status);
  const list = h("section", { class: "card", id: "job-list" }, t("loading"));
  root.append(h("h1", {}, t("jobs")), form, list);
  loadDatasets();
  loadJobs();
  const timer = setInterval(loadJobs, 5000);
  return () => clearInterval(timer);

  async function loadDatasets() {
    try {
      const page = await api("GET", "/api/v1/datasets?limit=100");
      fill(datasets, ...page.data.map((d) => h("option", { value: d.id }, `${d.filename} (${d.examples})`)));
      if (!page.data.length) fill(status, h("p", {}, t("upload_first"), " ", link("#/datasets", t("datasets"))));
      if (query.get("dataset")) datasets.value = query.get("dataset");
    } catch (error) {
      fill(status, errorBox(error));
    }
  }

  async function create(event) {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    const hyperparameters = {};
    for (const [name] of KNOBS) if (values[name] !== "") hyperparameters[name] = Number(values[name]);
    const body = { base_model: values.base_model, dataset_id: values.dataset_id, method: values.method,
      hyperparameters, resources: { processes: Number(values.processes || 1) } };
    if (values.suffix) body.suffix = values.suffix;
    fill(status, t("starting"));
    try {
      const job = await api("POST", "/api/v1/jobs", body, { "Idempotency-Key": idempotencyKey });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      fill(status, errorBox(error));
    }
  }

  async function loadJobs() {
    try {
      const page = await api("GET", "/api/v1/jobs?limit=50");
      fill(list, h("h2", {}, t("your_jobs")), table([
        ["ID", (j) => link(`#/jobs/${j.id}`, j.id)],
        [t("status"), (j) => badge(t(`status_${j.status}`), j.status)],
        [t("progress"), (j) => progressText(j.progress)],
        [t("base_model"), (j) => j.base_model],
        [t("method"), (j) => j.method],
        [t("result"), (j) => (j.fine_tuned_model ? link(modelHref(j.fine_tuned_model), j.fine_tuned_model) : "—")],
        [t("created"), (j) => when(j.created_at)],
      ], page.data));
    } catch (error) {
      fill(list, errorBox(error));
    }
  }
}

export function progressText(progress) {
  if (!progress || progress.step === undefined) return "—";
  const of = progress.max_steps ? ` / ${progress.max_steps}` : "";
  return t("step_of", { step: progress.step, of }) + (progress.percent !== undefined ? ` (${progress.percent}%)` : "");
}

export function modelHref(ref) {
  const [name, version] = ref.split(":");
  return `#/models/${encodeURIComponent(name)}${version ? `/${version}` : ""}`;
}

function randomKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

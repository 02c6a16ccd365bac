// Datasets: upload (a rejected file shows its validation report), the list, and one dataset's
// report with a preview of the text the model will be trained on.
import { api } from "./api.js";
import { badge, errorBox, field, fill, h, link, num, percent, table, when } from "./dom.js";
import { t } from "./i18n.js";

export function datasetsView(root) {
  const status = h("div", { class: "status", id: "upload-status" });
  const form = h("form", { class: "card", id: "upload-form", onsubmit: upload },
    h("h2", {}, t("upload_dataset")),
    h("div", { class: "row" },
      field(t("file"), h("input", { type: "file", name: "file", required: true,
        accept: ".jsonl,.json,.csv,.tsv,.parquet" }), t("file_hint")),
      field(t("tokenizer_model"), h("input", { name: "model", value: "smollm2-135m", required: true })),
      field(t("max_length"), h("input", { name: "max_length", type: "number", value: 4096, min: 16 }))),
    h("button", { type: "submit" }, t("upload")), status);
  const list = h("section", { class: "card", id: "dataset-list" }, t("loading"));
  root.append(h("h1", {}, t("datasets")), form, list);
  load();

  async function upload(event) {
    event.preventDefault();
    fill(status, t("uploading"));
    try {
      const dataset = await api("POST", "/api/v1/datasets", new FormData(form));
      location.hash = `#/datasets/${dataset.id}`;
    } catch (error) {
      fill(status, errorBox(error), error.details.report ? reportView(error.details.report) : "");
    }
  }

  async function load() {
    try {
      const page = await api("GET", "/api/v1/datasets?limit=100");
      fill(list, h("h2", {}, t("your_datasets")), table([
        [t("file"), (d) => link(`#/datasets/${d.id}`, d.filename)],
        [t("examples"), (d) => num(d.examples)],
        [t("warnings"), (d) => num(d.report.warnings)],
        [t("tokens_total"), (d) => num(d.report.tokens && d.report.tokens.total)],
        [t("created"), (d) => when(d.created_at)],
        ["ID", (d) => h("code", {}, d.id)],
      ], page.data), page.has_more ? h("p", { class: "muted" }, t("more_not_shown")) : null);
    } catch (error) {
      fill(list, errorBox(error));
    }
  }
}

export function datasetView(root, id) {
  const head = h("section", { class: "card" }, t("loading"));
  const preview = h("section", { class: "card", id: "preview" }, h("h2", {}, t("preview")), t("loading"));
  root.append(h("p", {}, link("#/datasets", `← ${t("datasets")}`)), head, preview);

  api("GET", `/api/v1/datasets/${encodeURIComponent(id)}`).then((dataset) => {
    fill(head, h("h1", {}, dataset.filename), h("p", { class: "muted" },
      h("code", {}, dataset.id), ` · ${num(dataset.bytes)} B · sha256 `, h("code", {}, dataset.sha256.slice(0, 16)), "…"),
      h("p", {}, link(`#/jobs?dataset=${dataset.id}`, t("train_on_this"))), reportView(dataset.report));
  }).catch((error) => fill(head, errorBox(error)));

  api("GET", `/api/v1/datasets/${encodeURIComponent(id)}/preview?n=3`).then((page) => {
    fill(preview, h("h2", {}, t("preview")), h("p", { class: "legend" },
      h("span", { class: "span-trained" }, t("trained_text")), " ", h("span", { class: "span-context" }, t("context_text"))),
    page.data.map((example) => h("div", { class: "example" },
      h("div", { class: "muted" }, `${t("line")} ${example.line} · ${num(example.tokens)} ${t("tokens")} · `
        + `${num(example.trained_tokens)} ${t("trained")}`),
      h("pre", { class: "spans" }, example.spans.map((span) =>
        h("span", { class: span.trained ? "span-trained" : "span-context" }, span.text))))));
  }).catch((error) => fill(preview, h("h2", {}, t("preview")), errorBox(error)));
}

// The validation report: counts, token statistics, and every issue with its line.
export function reportView(report) {
  const tokens = report.tokens || {};
  const length = report.length || {};
  const facts = [
    [t("records"), num(report.records)], [t("examples"), num(report.examples)],
    [t("errors"), num(report.errors)], [t("warnings"), num(report.warnings)],
    [t("tokens_total"), num(tokens.total)], [t("trained_tokens"), num(tokens.trained)],
    [t("length"), `${num(length.min)} / ${num(length.mean)} / ${num(length.max)}`],
    [t("with_reasoning"), percent(report.with_reasoning)],
  ];
  if (report.split) facts.push([t("split"), `${report.split.train} / ${report.split.validation}`]);
  return h("div", { class: "report", id: "report" },
    h("h3", {}, t("validation_report")),
    h("dl", { class: "facts" }, facts.map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value)))),
    h("h3", {}, t("issues")),
    table([
      [t("severity"), (i) => badge(t(i.severity), i.severity)],
      [t("line"), (i) => (i.line ?? "—")],
      [t("field"), (i) => (i.field ? h("code", {}, i.field) : "—")],
      [t("code"), (i) => h("code", {}, i.code)],
      [t("message"), (i) => i.message],
    ], report.issues || [], { empty: t("no_issues") }));
}

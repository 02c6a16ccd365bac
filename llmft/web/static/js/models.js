// The registry: models, their versions (lineage, metrics, evaluation beside the base with a few examples), aliases,
// promotion (PUT .../aliases/ALIAS, which a gate may refuse with 409) and roll back.
import { api } from "./api.js";
import { badge, errorBox, field, fill, h, link, num, percent, table, when } from "./dom.js";
import { t } from "./i18n.js";

export function modelsView(root) {
  const list = h("section", { class: "card", id: "model-list" }, t("loading"));
  root.append(h("h1", {}, t("models")), list);
  api("GET", "/api/v1/models").then((page) => {
    fill(list, table([
      [t("model"), (m) => link(`#/models/${encodeURIComponent(m.name)}`, m.name)],
      [t("base_model"), (m) => m.base_model],
      [t("versions"), (m) => num(m.versions.length)],
      [t("aliases"), (m) => aliasChips(m.aliases)],
      [t("created"), (m) => when(m.created_at)],
    ], page.data, { empty: t("no_models") }));
  }).catch((error) => fill(list, errorBox(error)));
}

export function modelView(root, name, chosen) {
  const path = `/api/v1/models/${encodeURIComponent(name)}`;
  const head = h("section", { class: "card", id: "model-head" }, t("loading"));
  const detail = h("section", { class: "card", id: "version-detail" });
  const history = h("section", { class: "card", id: "model-history" });
  root.append(h("p", {}, link("#/models", `← ${t("models")}`)), head, detail, history);
  load();

  async function load() {
    try {
      const [model, events] = await Promise.all([api("GET", path), api("GET", `${path}/events`)]);
      const version = model.versions.find((v) => v.version === Number(chosen)) || model.versions[model.versions.length - 1];
      showModel(model, version);
      if (version) showVersion(model, version);
      fill(history, h("h2", {}, t("history")), table([
        [t("time"), (e) => when(e.created_at)], [t("type"), (e) => badge(e.type, "info")],
        [t("message"), (e) => e.message],
      ], events.data.slice().reverse()));
    } catch (error) {
      fill(head, errorBox(error));
    }
  }

  function showModel(model, selected) {
    const byVersion = aliasesByVersion(model.aliases);
    fill(head,
      h("h1", {}, model.name), h("p", { class: "muted" }, `${t("base_model")}: ${model.base_model}`),
      h("h2", {}, t("aliases")),
      table([
        [t("alias"), ([alias]) => h("code", {}, `${model.name}@${alias}`)],
        [t("version"), ([, version]) => `v${version}`],
        ["", ([alias, version]) => rollBackButton(model, alias, version)],
      ], Object.entries(model.aliases), { empty: t("no_aliases") }),
      h("h2", {}, t("versions")),
      table([
        [t("version"), (v) => link(`#/models/${encodeURIComponent(model.name)}/${v.version}`, `v${v.version}`)],
        [t("kind"), (v) => v.kind],
        [t("aliases"), (v) => (byVersion[v.version] || []).map((alias) => badge(alias, "alias"))],
        [t("train_loss"), (v) => num(v.metrics.train_loss)],
        [t("eval_loss"), (v) => num(v.metrics.eval_loss)],
        [t("job"), (v) => (v.job_id ? link(`#/jobs/${v.job_id}`, v.job_id) : "—")],
        [t("created"), (v) => when(v.created_at)],
      ], model.versions, { rowAttrs: (v) => ({ class: selected && v.version === selected.version ? "selected" : null }) }));
  }

  function rollBackButton(model, alias, version) {
    const earlier = model.versions.map((v) => v.version).filter((v) => v < version);
    if (!earlier.length) return h("span", { class: "muted" }, t("no_earlier_version"));
    const target = Math.max(...earlier);
    return h("button", { class: "secondary", onclick: () => moveAlias(model, alias, target, false, t("rolled_back")) },
      `${t("roll_back_to")} v${target}`);
  }

  function showVersion(model, version) {
    const lineage = version.lineage || {};
    const alias = h("input", { name: "alias", id: "alias-name", value: "production", required: true,
      pattern: "[a-z0-9][a-z0-9._\\-]{0,63}" });
    const force = h("input", { type: "checkbox", name: "force" });
    const reason = h("input", { name: "reason", placeholder: t("reason_hint") });
    const promote = h("form", { class: "promote", id: "promote-form", onsubmit: (event) => {
      event.preventDefault();
      moveAlias(model, alias.value, version.version, force.checked, t("promoted"), reason.value);
    } },
    field(t("alias"), alias), h("label", { class: "check" }, force, t("force")), field(t("reason"), reason),
    h("button", { type: "submit" }, `${t("promote")} v${version.version}`));
    fill(detail,
      h("h2", {}, `${t("version")} v${version.version} `, h("code", {}, version.ref)),
      h("div", { class: "status", id: "alias-status" }),
      promote,
      h("div", { class: "columns" },
        h("div", {}, h("h3", {}, t("lineage")), h("dl", { class: "facts" }, [
          [t("base_model"), lineage.base_model],
          [t("base_revision"), lineage.base_revision],
          [t("method"), lineage.method],
          [t("job"), version.job_id ? link(`#/jobs/${version.job_id}`, version.job_id) : "—"],
          [t("parent"), lineage.exported_from || "—"],
          [t("datasets"), (lineage.datasets || []).map((d) => h("div", {}, link(`#/datasets/${d.id}`, d.filename)))],
          [t("seed"), lineage.seed],
          ["llmft", lineage.llmft_version],
        ].map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value ?? "—"))))),
        h("div", {}, h("h3", {}, t("metrics")), h("dl", { class: "facts" }, Object.entries(version.metrics)
          .map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, num(value))))))),
      h("h3", {}, t("evaluation")), evaluationTable(version.evaluation), evaluationExamples(version.evaluation),
      h("details", {}, h("summary", {}, t("files")), table([
        [t("file"), (f) => h("code", {}, f.path)], ["bytes", (f) => num(f.bytes)],
        ["sha256", (f) => h("code", {}, f.sha256.slice(0, 16) + "…")],
      ], version.files)));
  }

  async function moveAlias(model, alias, version, force, done, reason) {
    const status = detail.querySelector("#alias-status") || head;
    const body = { version, force };
    if (reason) body.reason = reason;
    try {
      const moved = await api("PUT", `${path}/aliases/${encodeURIComponent(alias)}`, body);
      await load();
      fill(detail.querySelector("#alias-status"), h("div", { class: "ok" },
        `${done}: ${moved.name}@${moved.alias} → v${moved.version}` + (moved.previous ? ` (${t("was")} v${moved.previous})` : "")
        + (moved.override ? ` — ${t("gate_overridden")}` : "")));
    } catch (error) {
      fill(status, errorBox(error));
    }
  }
}

// The evaluation report's scores, the base model beside the fine-tune, with the change.
function evaluationTable(evaluation) {
  if (!evaluation) return h("p", { class: "empty" }, t("no_evaluation"));
  const base = evaluation.base || {};
  const candidate = evaluation.candidate || {};
  const names = [...new Set([...Object.keys(base), ...Object.keys(candidate)])];
  const rows = names.map((name) => ({ name, base: base[name], candidate: candidate[name] }));
  return h("div", { id: "evaluation" }, table([
    [t("metric"), (r) => r.name],
    [t("base"), (r) => num(r.base)],
    [t("fine_tuned"), (r) => num(r.candidate)],
    [t("change"), (r) => (typeof r.base === "number" && typeof r.candidate === "number" ? signed(r.candidate - r.base) : "—")],
  ], rows), h("p", { class: "muted" }, t("evaluated_on", { examples: num(evaluation.examples),
    generated: num(evaluation.generated), tokens: num(evaluation.max_new_tokens) })));
}

const EXAMPLES_SHOWN = 3;

// A few of the evaluation's examples: the question, the reference answer, the base's and the fine-tune's answers.
function evaluationExamples(evaluation) {
  const samples = (evaluation && evaluation.samples) || [];
  if (!samples.length) return null;
  const shown = samples.slice(0, EXAMPLES_SHOWN);
  return h("div", { id: "evaluation-examples" },
    h("h3", {}, t("eval_examples", { shown: shown.length, total: samples.length })),
    h("div", { class: "conversation" }, shown.map((sample) => h("div", { class: "turn eval-example" },
      labelled(t("question"), sample.prompt),
      labelled(t("reference_answer"), sample.reference),
      sample.base === undefined ? null : sideAnswer(t("base_answer"), sample.base),
      sample.candidate === undefined ? null : sideAnswer(t("fine_tuned_answer"), sample.candidate)))));
}

// A side is {answer, ended_with_eos, rouge_l, fact_hit}; a report stored before held the whole generation as text.
function sideAnswer(label, side) {
  if (typeof side === "string") return labelled(label, side);
  const scores = [t("sample_scores", { rouge: num(side.rouge_l, 2), facts: percent(side.fact_hit) })];
  if (!side.ended_with_eos) scores.push(t("cut_off"));
  return [labelled(label, side.answer), h("p", { class: "muted" }, scores.join(" · "))];
}

function labelled(label, text) {
  return [h("div", { class: "answer-label" }, label),
    text ? h("p", { class: "answer" }, text) : h("p", { class: "empty" }, t("eval_no_answer"))];
}

function signed(value) {
  return (value > 0 ? "+" : "") + num(value);
}

function aliasChips(aliases) {
  const names = Object.entries(aliases);
  return names.length ? names.map(([alias, version]) => badge(`${alias} → v${version}`, "alias")) : "—";
}

function aliasesByVersion(aliases) {
  const out = {};
  for (const [alias, version] of Object.entries(aliases)) (out[version] = out[version] || []).push(alias);
  return out;
}

// One job: status and progress, live charts of its metrics, its events, and pause/resume and cancel buttons.
// While the job runs, the page polls the job, its metrics and its new events every 1.5 s.
import { api } from "./api.js";
import { lineChart } from "./chart.js";
import { badge, errorBox, fill, h, link, num, when } from "./dom.js";
import { t } from "./i18n.js";
import { FINAL, modelHref, progressText } from "./jobs.js";

const POLL_MS = 1500;
const CHARTS = [
  ["loss", "train", "loss", "#2563eb"],
  ["eval_loss", "eval", "eval_loss", "#dc2626"],
  ["learning_rate", "train", "learning_rate", "#059669"],
  ["tokens_per_second", "train", "tokens_per_second", "#7c3aed"],
];
// A GRPO job's health (llmft/train/rl_health.py), charted when its metrics have them.
const RL_CHARTS = [
  ["reward_mean", "train", "reward_mean", "#d97706"],
  ["completion_length", "train", "completion_length", "#0891b2"],
];

export function jobView(root, id) {
  const path = `/api/v1/jobs/${encodeURIComponent(id)}`;
  const summary = h("section", { class: "card", id: "job-summary" }, t("loading"));
  const charts = h("section", { class: "charts", id: "charts" });
  const events = h("ol", { class: "events", id: "events" });
  const problem = h("div", { class: "status" });
  root.append(h("p", {}, link("#/jobs", `← ${t("jobs")}`)), summary, problem, charts,
    h("section", { class: "card" }, h("h2", {}, t("events")), events));
  let after = 0;
  let timer = null;
  let stopped = false;
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };

  async function poll() {
    try {
      const [job, metrics, page] = await Promise.all([api("GET", path), api("GET", `${path}/metrics`),
        api("GET", `${path}/events?after=${after}&limit=1000`)]);
      if (stopped) return;
      fill(problem);
      showSummary(job);
      showCharts(metrics);
      showEvents(page.data);
      if (!FINAL.includes(job.status) || page.has_more) timer = setTimeout(poll, POLL_MS);
    } catch (error) {
      if (stopped) return;
      fill(problem, errorBox(error));
      if (error.status !== 404 && error.status !== 401) timer = setTimeout(poll, 3 * POLL_MS);
    }
  }

  function showSummary(job) {
    const progress = job.progress || {};
    const running = !FINAL.includes(job.status);
    const cancel = h("button", { class: "danger", id: "cancel-job", disabled: !running, onclick: () => act(cancel, "cancel") },
      t("cancel_job"));
    // a fine-tune pauses (a running one once its trainer has saved a checkpoint) and resumes from there
    const verb = job.status === "paused" ? "resume" : "pause";
    const pause = h("button", { id: "pause-job", disabled: !running || job.kind !== "fine_tune",
      onclick: () => act(pause, verb) }, t(`${verb}_job`));
    fill(summary,
      h("div", { class: "title-row" }, h("h1", {}, job.id),
        badge(t(`status_${job.status}`), job.status), pause, cancel),
      h("div", { class: "progress", title: `${progress.percent ?? 0}%` },
        h("div", { class: "bar" })),
      h("dl", { class: "facts" }, [
        [t("progress"), progressText(progress)],
        [t("eta"), progress.eta_seconds !== undefined && running ? `${num(progress.eta_seconds)} s` : "—"],
        [t("loss"), num(progress.loss)],
        [t("eval_loss"), num(progress.eval_loss)],
        [t("base_model"), job.base_model],
        [t("method"), job.method],
        [t("dataset"), job.dataset_id ? link(`#/datasets/${job.dataset_id}`, job.dataset_id) : "—"],
        [t("result"), job.fine_tuned_model ? link(modelHref(job.fine_tuned_model), job.fine_tuned_model) : "—"],
        [t("attempts"), num(job.attempts)],
        [t("created"), when(job.created_at)],
        [t("started"), when(job.started_at)],
        [t("finished"), when(job.finished_at)],
      ].map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value)))),
      job.error ? errorBox({ code: job.error.code, message: job.error.message, details: {} }) : null,
      h("details", {}, h("summary", {}, t("hyperparameters")),
        h("pre", {}, JSON.stringify({ hyperparameters: job.hyperparameters, resources: job.resources, seed: job.seed,
          suffix: job.suffix }, null, 2))));
    // The bar's width is set through the DOM, which the page's Content-Security-Policy allows.
    summary.querySelector(".bar").style.width = `${Math.min(100, progress.percent ?? 0)}%`;
  }

  async function act(button, verb) {
    button.disabled = true;
    try {
      await api("POST", `${path}/${verb}`);
      clearTimeout(timer);
      poll();
    } catch (error) {
      fill(problem, errorBox(error));
      button.disabled = false;
    }
  }

  function showCharts(metrics) {
    const rl = metrics.train.some((p) => typeof p.reward_mean === "number") ? RL_CHARTS : [];
    fill(charts, ...[...CHARTS, ...rl].map(([id, series, key, color]) => lineChart({
      id, title: t(id), color,
      points: metrics[series].filter((p) => typeof p[key] === "number").map((p) => [p.step, p[key]]),
    })));
  }

  function showEvents(rows) {
    for (const event of rows) {
      after = Math.max(after, event.id);
      events.append(h("li", { class: `event level-${event.level}` },
        h("time", {}, new Date(event.created_at).toLocaleTimeString()), badge(event.type, event.level),
        h("span", {}, event.message)));
    }
    if (rows.length) events.scrollTop = events.scrollHeight; // the newest event in view
  }
}

// Alerts raised by the monitor on jobs (loss spikes, stalls, ...), newest first.
import { api } from "./api.js";
import { badge, errorBox, fill, h, link, table, when } from "./dom.js";
import { t } from "./i18n.js";

export function alertsView(root) {
  const list = h("section", { class: "card", id: "alert-list" }, t("loading"));
  root.append(h("h1", {}, t("alerts")), list);
  api("GET", "/api/v1/alerts?limit=100").then((page) => show(page.data)).catch((error) => {
    // A server without the alerts API answers 404 for the route: it has no alerts to show.
    if (error.status === 404) show([]);
    else fill(list, errorBox(error));
  });

  function show(alerts) {
    fill(list, table([
      [t("time"), (a) => when(a.created_at)],
      [t("severity"), (a) => badge(t(a.severity), a.severity)],
      [t("rule"), (a) => h("code", {}, a.rule)],
      [t("job"), (a) => (a.job_id ? link(`#/jobs/${a.job_id}`, a.job_id) : "—")],
      [t("message"), (a) => a.message],
      [t("details"), (a) => (a.data && Object.keys(a.data).length
        ? h("details", {}, h("summary", {}, t("details")), h("pre", {}, JSON.stringify(a.data, null, 2))) : "—")],
    ], alerts, { empty: t("no_alerts") }));
  }
}

// Sign in: the API key is checked against the API, then kept in sessionStorage (gone with the tab).
import { api, apiKey } from "./api.js";
import { errorBox, field, fill, h } from "./dom.js";
import { t } from "./i18n.js";

export function signInView(root, { next = "#/jobs" } = {}) {
  const input = h("input", { type: "password", name: "key", id: "api-key", autocomplete: "off", required: true,
    placeholder: "llmft_…" });
  const status = h("div", { class: "status" });
  const form = h("form", { class: "card narrow", id: "signin-form", onsubmit: signIn },
    h("h1", {}, t("sign_in")), h("p", {}, t("sign_in_hint")),
    field(t("api_key"), input), h("button", { type: "submit" }, t("sign_in")), status);
  root.append(form);
  input.focus();

  async function signIn(event) {
    event.preventDefault();
    apiKey.set(input.value.trim());
    fill(status, t("checking"));
    try {
      await api("GET", "/api/v1/datasets?limit=1");
      location.hash = next;
    } catch (error) {
      apiKey.clear();
      fill(status, errorBox(error));
    }
  }
}

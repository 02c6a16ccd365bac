// The playground: chat with NAME@ALIAS, NAME:V or a base through POST /v1/chat/completions with
// stream: true. The reasoning (reasoning_content) streams into a collapsible block apart from the answer.
import { api, streamEvents } from "./api.js";
import { errorBox, field, fill, h, num } from "./dom.js";
import { t } from "./i18n.js";

export function playgroundView(root, chosen) {
  const model = h("input", { name: "model", id: "chat-model", list: "served-models", required: true,
    value: chosen || "smollm2-135m" });
  const served = h("datalist", { id: "served-models" });
  const system = h("textarea", { name: "system", rows: 2, placeholder: t("system_hint") });
  const maxTokens = h("input", { name: "max_tokens", type: "number", min: 1, placeholder: t("server_default") });
  const temperature = h("input", { name: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0.7 });
  const prompt = h("textarea", { name: "prompt", id: "chat-input", rows: 3, required: true, placeholder: t("ask_hint") });
  const send = h("button", { type: "submit", id: "chat-send" }, t("send"));
  const stopButton = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => controller.abort() },
    t("stop"));
  const conversation = h("div", { class: "conversation", id: "conversation" });
  const form = h("form", { class: "card", id: "chat-form", onsubmit: ask },
    h("div", { class: "row" }, field(t("model"), model, t("model_ref_hint")), field(t("max_tokens"), maxTokens),
      field(t("temperature"), temperature)),
    field(t("system_prompt"), system), field(t("message"), prompt),
    h("div", { class: "buttons" }, send, stopButton,
      h("button", { type: "button", class: "secondary", onclick: clear }, t("clear"))));
  root.append(h("h1", {}, t("playground")), served, form, conversation);
  const messages = [];
  let controller = new AbortController();
  api("GET", "/v1/models").then((page) => fill(served, ...page.data.map((m) => h("option", { value: m.id }))))
    .catch((error) => conversation.prepend(errorBox(error)));
  return () => controller.abort();

  function clear() {
    messages.length = 0;
    fill(conversation);
  }

  async function ask(event) {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    messages.push({ role: "user", content: text });
    prompt.value = "";
    const reasoning = h("pre", { class: "reasoning-text" });
    const answer = h("div", { class: "answer" });
    const status = h("div", { class: "turn-status muted" }, t("streaming"));
    const turn = h("div", { class: "turn assistant" }, h("strong", {}, model.value.trim()),
      h("details", { class: "reasoning", open: true }, h("summary", {}, t("reasoning")), reasoning),
      h("div", { class: "answer-label muted" }, t("answer")), answer, status);
    conversation.append(h("div", { class: "turn user" }, h("strong", {}, t("you")), h("p", {}, text)), turn);
    const body = { model: model.value.trim(), messages: system.value.trim()
      ? [{ role: "system", content: system.value.trim() }, ...messages] : [...messages], stream: true,
    temperature: Number(temperature.value), stream_options: { include_usage: true } };
    if (maxTokens.value) body.max_tokens = Number(maxTokens.value);
    controller = new AbortController();
    send.disabled = true;
    stopButton.disabled = false;
    let finish = null;
    let usage = null;
    try {
      await streamEvents("/v1/chat/completions", body, (chunk) => {
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices || []) {
          if (choice.delta.reasoning_content) reasoning.append(choice.delta.reasoning_content);
          if (choice.delta.content) answer.append(choice.delta.content);
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }, controller.signal);
      messages.push({ role: "assistant", content: answer.textContent });
      fill(status, `${t("finished")}: ${finish}` + (usage ? ` · ${num(usage.completion_tokens)} ${t("tokens")}` : ""));
      status.dataset.done = "true";
      if (!reasoning.textContent) reasoning.parentElement.remove();
      if (!answer.textContent && finish === "length") fill(answer, h("span", { class: "muted" }, t("no_answer")));
    } catch (error) {
      messages.pop();
      fill(status, error.name === "AbortError" ? t("stopped") : errorBox(error));
    } finally {
      send.disabled = false;
      stopButton.disabled = true;
    }
  }
}

// The Router-R1 trace viewer: a list of recent requests and one request's timeline.
// Reads GET ../v1/router/traces (the list) and GET ../v1/router/traces/{id} (one trace) with
// the API key kept in localStorage. Every piece of trace content is put in the page as text
// (textContent / text nodes), never parsed as HTML.
"use strict";

(() => {
  const KEY_STORAGE = "router-r1.api-key";
  const REFRESH_MS = 3000;
  const LIST_LIMIT = 50;
  const OUTCOMES = ["answer", "no_answer", "deadline_exceeded"];
  const SUCCEEDED = ["ok", "cached"];
  const API = "../v1/router/traces";

  const $ = (id) => document.getElementById(id);
  const state = { profiles: new Set(), outcomes: new Set(OUTCOMES), timer: null, loading: false };

  // ---------------------------------------------------------------- DOM and formatting

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "style") Object.assign(node.style, value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child)); // strings become text nodes
    }
    return node;
  }

  const token = (value) => String(value).replace(/[^a-z0-9_-]/gi, "");
  const usd = (value) => `$${Number(value || 0).toFixed(6)}`;
  const duration = (msValue) => {
    const value = Number(msValue || 0);
    return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
  };
  const utc = (unix) => new Date(Number(unix) * 1000).toISOString().replace("T", " ").slice(0, 19);
  const badge = (text, kind) => el("span", { class: `badge ${kind || ""}` }, text);

  function showMessage(text, kind) {
    const box = $("message");
    box.textContent = text || "";
    box.className = kind || "";
    box.hidden = !text;
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const key = localStorage.getItem(KEY_STORAGE);
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(path, { headers, cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, `The gateway cannot be reached (${error.message}).`);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error && body.error.message;
      throw new ApiError(response.status, message || `HTTP ${response.status}`);
    }
    return body;
  }

  function explain(error) {
    if (error.status === 401) {
      const saved = localStorage.getItem(KEY_STORAGE);
      showMessage(
        saved
          ? "The gateway refused the saved API key (401): enter a valid key above."
          : "This gateway needs an API key (401): enter yours above. It is kept in this browser only.",
        "error",
      );
      $("key").focus();
    } else {
      showMessage(error.message, "error");
    }
  }

  // ---------------------------------------------------------------- the list

  function fillSelect(select, values) {
    const current = select.value;
    const wanted = ["", ...[...values].sort()];
    const have = [...select.options].map((o) => o.value);
    if (wanted.join("\n") === have.join("\n")) return;
    select.replaceChildren(...wanted.map((v) => el("option", { value: v }, v || "all")));
    select.value = current;
  }

  function traceRow(item) {
    const target = item.profile || item.model || "?";
    const outcome = item.outcome || "?";
    const failed = Number(item.status) >= 400;
    return el(
      "tr",
      { dataset: { testid: "trace-row", requestId: item.request_id }, title: item.request_id },
      el("td", {}, utc(item.created)),
      el("td", {}, item.key_id || "—"),
      el("td", {}, target, item.mode === "passthrough" ? badge("passthrough") : null),
      el(
        "td",
        { dataset: { testid: "row-outcome" } },
        badge(outcome, `outcome-${token(outcome)}`),
        failed ? badge(`HTTP ${item.status}`, "failed") : null,
      ),
      el("td", { class: "num" }, item.routes ?? 0),
      el("td", { class: "num", dataset: { testid: "row-cost" } }, usd(item.cost_usd)),
      el("td", { class: "num" }, duration(item.latency_ms)),
    );
  }

  async function loadList() {
    if (state.loading) return;
    state.loading = true;
    const params = new URLSearchParams({ limit: String(LIST_LIMIT) });
    if ($("filter-profile").value) params.set("profile", $("filter-profile").value);
    if ($("filter-outcome").value) params.set("outcome", $("filter-outcome").value);
    try {
      const body = await api(`${API}?${params}`);
      const items = body.data || [];
      for (const item of items) {
        if (item.profile) state.profiles.add(item.profile);
        if (item.outcome) state.outcomes.add(item.outcome);
      }
      fillSelect($("filter-profile"), state.profiles);
      fillSelect($("filter-outcome"), state.outcomes);
      $("trace-rows").replaceChildren(...items.map(traceRow));
      $("empty").hidden = items.length > 0;
      const more = body.has_more ? ` (newest ${items.length}; more are kept)` : "";
      $("list-status").textContent = `${items.length} requests${more}, ${utc(Date.now() / 1000)}`;
      showMessage("");
    } catch (error) {
      explain(error);
    } finally {
      state.loading = false;
    }
  }

  function scheduleRefresh() {
    clearTimeout(state.timer);
    state.timer = null;
    if ($("live").checked && !$("list-view").hidden) {
      state.timer = setTimeout(async () => {
        await loadList();
        scheduleRefresh();
      }, REFRESH_MS);
    }
  }

  // ---------------------------------------------------------------- one trace

  function facts(list, pairs) {
    list.replaceChildren();
    for (const [name, value, testid] of pairs) {
      list.append(el("dt", {}, name), el("dd", { dataset: testid ? { testid } : {} }, value));
    }
  }

  function stepFailed(step) {
    return step.upstream_status !== null && step.upstream_status !== undefined
      && !SUCCEEDED.includes(step.upstream_status);
  }

  function timeline(trace) {
    const steps = trace.steps || [];
    const ends = steps.map((s) => Math.max(
      s.started_ms + (s.policy_latency_ms || 0),
      (s.upstream_started_ms ?? 0) + (s.upstream_latency_ms || 0),
    ));
    const total = Math.max(1, trace.totals?.total_ms || 0, ...ends);
    const pct = (value) => `${Math.min(100, Math.max(0, (100 * value) / total)).toFixed(3)}%`;
    const bar = (kind, from, to, title, testid) => el("div", {
      class: `bar ${kind}`,
      title,
      dataset: { testid },
      style: { left: pct(from), width: pct(Math.max(0, to - from)) },
    });
    const lanes = steps.map((step) => {
      const hasCall = step.upstream_started_ms !== null && step.upstream_started_ms !== undefined;
      const policyEnd = hasCall ? step.upstream_started_ms : step.started_ms + step.policy_latency_ms;
      const label = `turn ${step.index + 1} · ${step.model || step.action}`;
      const lane = el(
        "div",
        { class: "lane", dataset: { testid: "lane" } },
        el("span", { class: "lane-label", title: label }, label),
        bar("policy", step.started_ms, policyEnd,
          `turn ${step.index + 1}: policy ${duration(step.policy_latency_ms)}`, "bar-policy"),
      );
      if (hasCall) {
        const kind = stepFailed(step) ? "upstream failed" : step.cached ? "upstream cached" : "upstream";
        lane.append(bar(kind, step.upstream_started_ms,
          step.upstream_started_ms + step.upstream_latency_ms,
          `${step.model}: ${step.upstream_status}, ${duration(step.upstream_latency_ms)}`,
          "bar-upstream"));
      }
      return lane;
    });
    const axis = el("div", { class: "axis" },
      ...[0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { style: { left: `${f * 100}%` } },
        duration(total * f))));
    $("timeline").replaceChildren(...lanes, axis);
  }

  function stepCard(step) {
    const marks = [];
    if (step.cached) marks.push(badge("cached", "cached"));
    if (stepFailed(step)) marks.push(badge(step.upstream_status, "failed"));
    if (step.action === "invalid" || step.action === "none") marks.push(badge("no valid action", "failed"));
    const pairs = [];
    if (step.written_model || step.model) {
      const written = step.written_model && step.written_model !== step.model
        ? ` (written “${step.written_model}”)` : "";
      pairs.push(["model", `${step.model || "unknown"}${written}`, "step-model"]);
    }
    if (step.upstream_error) pairs.push(["error", step.upstream_error]);
    pairs.push(
      ["policy tokens", `${step.policy_prompt_tokens} in / ${step.policy_completion_tokens} out`
        + (step.cached_tokens !== null && step.cached_tokens !== undefined
          ? ` (${step.cached_tokens} cached)` : "")],
      ["cost", usd(step.cost_usd), "step-cost"],
      ["policy latency", duration(step.policy_latency_ms)],
    );
    if (step.upstream_status !== null && step.upstream_status !== undefined) {
      pairs.push(
        ["upstream tokens", `${step.upstream_prompt_tokens} in / ${step.upstream_completion_tokens} out`],
        ["upstream latency", duration(step.upstream_latency_ms)],
      );
    }
    const list = el("dl", { class: "facts" });
    facts(list, pairs);
    const text = (name, value, testid) => value
      ? el("div", {}, el("span", { class: "muted" }, name), el("pre", { class: "text", dataset: { testid } }, value))
      : null;
    return el(
      "li",
      { class: "step", dataset: { testid: "step", index: String(step.index) } },
      el("h4", {}, `Turn ${step.index + 1}: `, el("span", { dataset: { testid: "step-action" } }, step.action), ...marks),
      text("think", step.think, "step-think"),
      text("sub-query", step.query, "step-query"),
      text("reply", step.reply_excerpt, "step-reply"),
      list,
    );
  }

  function renderTrace(trace) {
    const totals = trace.totals || {};
    $("detail-title").textContent = trace.request_id;
    facts($("detail-facts"), [
      ["profile", trace.profile],
      ["policy model", trace.policy_model],
      ["outcome", trace.outcome, "detail-outcome"],
      ["started", trace.started_at ? `${utc(trace.started_at)} UTC` : "—"],
    ]);
    timeline(trace);
    facts($("totals"), [
      ["routes", totals.routes ?? 0],
      ["models", (totals.models || []).join(", ") || "—"],
      ["cost", usd(totals.cost_usd), "total-cost"],
      ["policy / upstream cost", `${usd(totals.policy_cost_usd)} / ${usd(totals.upstream_cost_usd)}`],
      ["policy tokens", `${totals.policy_prompt_tokens ?? 0} in / ${totals.policy_completion_tokens ?? 0} out`],
      ["upstream tokens", `${totals.upstream_prompt_tokens ?? 0} in / ${totals.upstream_completion_tokens ?? 0} out`],
      ["policy / upstream time", `${duration(totals.policy_time_ms)} / ${duration(totals.upstream_time_ms)}`],
      ["gateway overhead", duration(totals.overhead_ms)],
      ["total", duration(totals.total_ms), "total-latency"],
    ]);
    $("answer").textContent = trace.answer ?? "(no answer)";
    $("steps").replaceChildren(...(trace.steps || []).map(stepCard));
  }

  async function showTrace(requestId) {
    try {
      renderTrace(await api(`${API}/${encodeURIComponent(requestId)}`));
      showMessage("");
    } catch (error) {
      explain(error);
    }
  }

  // ---------------------------------------------------------------- routing and controls

  function route() {
    const match = /^#\/trace\/(.+)$/.exec(location.hash);
    $("list-view").hidden = Boolean(match);
    $("detail-view").hidden = !match;
    if (match) {
      clearTimeout(state.timer);
      showTrace(decodeURIComponent(match[1]));
    } else {
      loadList().then(scheduleRefresh);
    }
  }

  function start() {
    $("trace-rows").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-request-id]");
      if (row) location.hash = `#/trace/${encodeURIComponent(row.dataset.requestId)}`;
    });
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (key) localStorage.setItem(KEY_STORAGE, key);
      $("key").value = "";
      $("key").placeholder = key ? "key saved (hidden)" : $("key").placeholder;
      route();
    });
    $("forget-key").addEventListener("click", () => {
      localStorage.removeItem(KEY_STORAGE);
      $("key").placeholder = "kept in this browser only";
      showMessage("The key was removed from this browser.");
    });
    for (const id of ["filter-profile", "filter-outcome"]) $(id).addEventListener("change", loadList);
    $("live").addEventListener("change", scheduleRefresh);
    $("refresh").addEventListener("click", loadList);
    for (const id of ["home", "back"]) {
      $(id).addEventListener("click", (event) => {
        event.preventDefault();
        if (location.hash) location.hash = ""; // hashchange routes
        else route();
      });
    }
    if (localStorage.getItem(KEY_STORAGE)) $("key").placeholder = "key saved (hidden)";
    window.addEventListener("hashchange", route);
    route();
  }

  document.addEventListener("DOMContentLoaded", start);
})();

// llmsched status page: fetch /ui/data.json every 2 s and render every pool.
// Values are put in the page with textContent only: member names and error messages come from BIG-IP and
// the engines, so they are never interpreted as HTML.
"use strict";

const REFRESH_MS = 2000;
const DATA_URL = "/ui/data.json";
// With global.admin_token_env set, open the page once as /ui?token=...: the API answers with a cookie and a
// redirect to /ui, and the browser sends that cookie with every request of this page (same origin).

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the page's CSP, unlike attributes
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function num(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 10) return seconds.toFixed(1) + " s";
  if (seconds < 120) return Math.round(seconds) + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  return Math.round(seconds / 3600) + " h";
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleTimeString() : "";
}

function badge(text, kind) {
  return el("span", {class: "badge " + kind}, text);
}

function pct(rate) {
  return rate === null || rate === undefined ? "–" : (rate * 100).toFixed(0) + " %";
}

function shareCell(share) {
  const pct = share * 100;
  return el("td", {class: "share"},
    el("div", {class: "bar"}, el("div", {class: "fill", style: "width:" + pct.toFixed(1) + "%"})),
    el("span", {class: "pct"}, pct.toFixed(1) + " %"));
}

function memberRow(pool, m) {
  const metrics = m.metrics || {};
  const stale = m.data_age === null || (pool.stale_after && m.data_age > pool.stale_after);
  const engine = [m.engine, m.variant && m.variant !== m.engine ? m.variant : null].filter(Boolean).join(" / ");
  return el("tr", {class: "member" + (m.eligible ? "" : " ineligible"), "data-member": m.id, "data-pool": pool.key},
    el("td", {class: "id"}, m.id),
    el("td", {class: "bigip"}, badge(m.bigip_status || "?", m.bigip_status === "enabled" ? "ok" : "bad")),
    el("td", {class: "engine"}, engine || "–", m.detection && m.detection !== "ok" ? badge(m.detection, "warn") : null),
    el("td", {class: "num waiting"}, num(metrics.waiting_queue, 0)),
    el("td", {class: "num running"}, num(metrics.running_req, 0)),
    el("td", {class: "num kv"}, metrics.cache_usage === undefined ? "–" : (metrics.cache_usage * 100).toFixed(1) + " %"),
    el("td", {class: "num score"}, num(m.score, 4)),
    shareCell(m.share),
    el("td", {class: "num sent"}, m.sent_since_scrape),
    el("td", {class: "num age" + (stale ? " stale" : "")}, age(m.data_age)),
    el("td", {class: "num prefix", title: "prefix-cache hit rate as the engine reports it over the last scrape interval, " +
      "since the engine started, and the prefix index's estimate"},
      pct(m.prefix_hit_rate_recent) + " / " + pct(m.prefix_hit_rate) + " / " + pct(m.prefix_estimate)),
    el("td", {class: "why"}, m.eligible ? badge("eligible", "ok") : m.why_not));
}

function poolCard(pool) {
  const flags = [
    badge("mode " + (pool.mode || "none"), "info"),
    badge("engine " + (pool.engine_type || "?"), "info"),
    pool.herd_control ? badge("herd control", "info") : null,
    pool.pool_fallback ? badge("pool_fallback: every answer is fallback", "warn") : null,
  ];
  const head = el("tr", {},
    ...["member", "BIG-IP", "engine", "waiting", "running", "KV cache", "score", "expected share", "sent",
        "data age", "prefix hits engine / index", "eligible / why not"].map((h) => el("th", {}, h)));
  const rows = pool.members.map((m) => memberRow(pool, m));
  const table = el("table", {class: "members"}, el("thead", {}, head),
    el("tbody", {}, ...(rows.length ? rows : [el("tr", {}, el("td", {colSpan: 12, class: "empty"},
      "no members known yet (is the poller running?)"))])));
  const errors = pool.errors.length
    ? el("ul", {class: "errors"}, ...pool.errors.map((e) => el("li", {class: "error"},
        el("span", {class: "source"}, e.source), el("span", {class: "at"}, when(e.at)), e.message)))
    : el("p", {class: "noerrors"}, "no errors");
  return el("section", {class: "pool", "data-pool": pool.key},
    el("h2", {}, pool.name, el("span", {class: "partition"}, " / " + pool.partition)),
    el("div", {class: "flags"}, ...flags,
      el("span", {class: "meta"}, "eligible " + pool.eligible + " of " + pool.members.length),
      el("span", {class: "meta"}, "scores " + age(pool.scores_age) + " old"),
      el("span", {class: "meta"}, "BIG-IP read " + age(pool.members_age) + " ago"),
      el("span", {class: "meta"}, "stale after " + (pool.stale_after || "?") + " s")),
    table,
    el("h3", {}, "Last errors"), errors);
}

// One row per live scraper (its last cycle): the scrapers split the members, so together they show the load.
function scrapersCard(scrapers) {
  const head = el("tr", {}, ...["scraper", "members", "cycle", "late", "members/s", "skipped ticks", "interval",
    "reported"].map((h) => el("th", {}, h)));
  const rows = scrapers.map((s) => el("tr", {class: "scraper"},
    el("td", {}, s.holder), el("td", {class: "num"}, s.members), el("td", {class: "num"}, num(s.cycle_duration, 3) + " s"),
    el("td", {class: "num"}, num(s.lateness, 3) + " s"), el("td", {class: "num"}, num(s.members_per_second, 0)),
    el("td", {class: "num"}, s.skipped_ticks), el("td", {class: "num"}, num(s.interval, 1) + " s"),
    el("td", {class: "num"}, age(s.age) + " ago")));
  return el("section", {class: "pool scrapers"}, el("h2", {}, "Scrapers"),
    el("table", {class: "members"}, el("thead", {}, head), el("tbody", {}, ...(rows.length ? rows
      : [el("tr", {}, el("td", {colSpan: 8, class: "empty"}, "no scraper has reported a cycle in the last 10 s"))]))));
}

function render(data) {
  const main = document.getElementById("pools");
  const cards = data.pools.map(poolCard);
  main.replaceChildren(...(cards.length ? [scrapersCard(data.scrapers || []), ...cards] : [el("p", {class: "empty"},
    "No pool is configured in Redis yet: start a collector or the scorer with --config.")]));
  const config = data.config || {};
  document.getElementById("config").textContent = config.version
    ? "config " + config.version + " from " + (config.publisher || "?") : "no config published";
  document.getElementById("updated").textContent = "updated " + when(data.generated_at);
}

function setState(text, kind) {
  const state = document.getElementById("state");
  state.textContent = text;
  state.className = "state " + kind;
}

async function refresh() {
  try {
    const response = await fetch(DATA_URL, {cache: "no-store", credentials: "same-origin"});
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
    render(data);
    setState("live", "ok");
  } catch (err) {
    setState("not updating: " + err.message, "bad");
  }
}

refresh();
setInterval(refresh, REFRESH_MS);

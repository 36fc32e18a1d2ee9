// tidewire dashboard: polls the dashboard server every second and draws what it gets.
// The login token comes from the URL fragment (#token=...), which the browser never sends
// to a server; the page sends it in an Authorization header on every /api call.
"use strict";

const POLL_MS = 1000;
const HISTORY = 120; // samples kept per series (two minutes)
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"];

const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
// what the page shows, for people and for the browser test
const state = { status: null, usage: null, metrics: null, series: {}, earnings: [], points: 0,
  maxRate: 0, last: {}, authorized: null };
window.tidewire = state;

function $(id) { return document.getElementById(id); }

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(2)) + " " + units[i];
}

function short(key) { return key.slice(0, 8) + "…"; }

function ago(ts) {
  if (ts === null || ts === undefined) return "never";
  const s = Math.max(0, Math.round(Date.now() / 1000 - ts));
  return s < 120 ? s + " s ago" : Math.round(s / 60) + " min ago";
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60), r = Math.floor(s % 60);
  return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min " + r + " s";
}

async function api(name) {
  const reply = await fetch("/api/" + name, { headers: { Authorization: "Bearer " + token },
    cache: "no-store" });
  if (reply.status === 401) throw new Error("unauthorized");
  if (!reply.ok) throw new Error("the dashboard server answered " + reply.status);
  return reply.json();
}

function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const [text, cls] of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
}

function fill(tbody, rows) {
  tbody.replaceChildren();
  for (const cells of rows) row(tbody, cells);
}

function family(name) { return (state.metrics && state.metrics[name]) || {}; }

function sum(values) { return Object.values(values).reduce((a, b) => a + b, 0); }

function showNode(st) {
  $("iface").textContent = st.interface;
  $("pubkey").textContent = st.public_key;
  $("roles").textContent = (st.roles || []).join(", ") || "peer";
  $("uptime").textContent = duration(st.uptime || 0);
  $("port").textContent = st.listen_port;
  const rss = family("process_resident_memory_bytes")[""];
  $("memory").textContent = rss === undefined ? "–" : bytes(rss);
  const rx = st.peers.reduce((a, p) => a + p.rx_bytes, 0);
  $("peer-count").textContent = String(st.peers.length);
  $("rx-total").textContent = bytes(rx);
  $("rx-total").dataset.bytes = String(rx);
  fill($("peers"), st.peers.map((p) => [[short(p.public_key), "key"], [p.endpoint || "(none)"],
    [ago(p.latest_handshake)], [bytes(p.rx_bytes), "num"], [bytes(p.tx_bytes), "num"]]));
  const refused = Object.entries(st.exit.refused || {});
  fill($("refusals"), st.exit.enabled
    ? (refused.length ? refused.map(([k, v]) => [[k], [String(v), "num"]]) : [[["none"]]])
    : [[["this node is not an exit"]]]);
}

function showUsage(u) {
  const owed = family("tidewire_client_credit_owed_bytes");
  const window_ = family("tidewire_client_credit_window_bytes");
  let verified = 0, unverified = 0;
  for (const s of u.sessions) { verified += s.verified_up + s.verified_down; unverified += s.unverified; }
  for (const p of u.unverified_peers) unverified += p.unverified_up + p.unverified_down;
  $("verified").textContent = bytes(verified);
  $("verified").dataset.bytes = String(verified);
  $("unverified").textContent = bytes(unverified);
  const receipts = family("tidewire_receipts_total")[""];
  $("receipts").textContent = receipts === undefined ? "–" : String(receipts);
  const epoch = Math.floor(Date.now() / 1000 / u.epoch_seconds);
  $("epoch").textContent = epoch + " (" + duration(u.epoch_seconds) + " each)";
  fill($("sessions"), u.sessions.length ? u.sessions.map((s) => {
    const credit = owed[s.client] === undefined ? "–"
      : bytes(owed[s.client]) + " of " + bytes(window_[s.client] || 0);
    return [[short(s.client), "key"], [bytes(s.verified_up + s.verified_down), "num"],
      [bytes(s.unverified), "num"], [ago(s.last_receipt)], [credit], [s.state]];
  }) : [[["no client sessions"]]]);
  state.earnings.push({ t: Date.now() / 1000, verified, unverified });
  if (state.earnings.length > HISTORY) state.earnings.shift();
}

function sample(st) {
  const now = Date.now() / 1000;
  for (const p of st.peers) {
    const prev = state.last[p.public_key];
    state.last[p.public_key] = { t: now, rx: p.rx_bytes, tx: p.tx_bytes };
    if (!prev || now <= prev.t) continue;
    const dt = now - prev.t;
    const rate = { t: now, rx: Math.max(0, p.rx_bytes - prev.rx) / dt,
      tx: Math.max(0, p.tx_bytes - prev.tx) / dt };
    const series = state.series[p.public_key] || (state.series[p.public_key] = []);
    series.push(rate);
    if (series.length > HISTORY) series.shift();
    state.points += 1;
    state.maxRate = Math.max(state.maxRate, rate.rx, rate.tx);
  }
}

function axes(ctx, canvas, top, label) {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#5a6978";
  ctx.font = "11px sans-serif";
  ctx.fillText(label(top), 4, 12);
  ctx.strokeStyle = "#e3e8ee";
  ctx.beginPath();
  ctx.moveTo(0, canvas.height - 0.5);
  ctx.lineTo(canvas.width, canvas.height - 0.5);
  ctx.stroke();
}

function line(ctx, canvas, values, top, color, dashed) {
  const step = canvas.width / (HISTORY - 1);
  const x0 = canvas.width - (values.length - 1) * step;
  ctx.strokeStyle = color;
  ctx.setLineDash(dashed ? [4, 3] : []);
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  values.forEach((v, i) => {
    const y = canvas.height - 2 - (v / top) * (canvas.height - 18);
    if (i === 0) ctx.moveTo(x0 + i * step, y); else ctx.lineTo(x0 + i * step, y);
  });
  ctx.stroke();
  ctx.setLineDash([]);
}

function drawThroughput() {
  const canvas = $("graph"), ctx = canvas.getContext("2d");
  const keys = Object.keys(state.series);
  let top = 1024;
  for (const k of keys) for (const r of state.series[k]) top = Math.max(top, r.rx, r.tx);
  axes(ctx, canvas, top, (t) => bytes(t) + "/s");
  const legend = $("legend");
  legend.replaceChildren();
  keys.forEach((k, i) => {
    const color = COLORS[i % COLORS.length];
    line(ctx, canvas, state.series[k].map((r) => r.rx), top, color, false);
    line(ctx, canvas, state.series[k].map((r) => r.tx), top, color, true);
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = color;
    item.append(swatch, short(k) + " (received solid, sent dashed)");
    legend.appendChild(item);
  });
}

function drawEarnings() {
  const canvas = $("earnings-chart"), ctx = canvas.getContext("2d");
  let top = 1024;
  for (const e of state.earnings) top = Math.max(top, e.verified, e.unverified);
  axes(ctx, canvas, top, (t) => bytes(t));
  line(ctx, canvas, state.earnings.map((e) => e.verified), top, "#2ca02c", false);
  line(ctx, canvas, state.earnings.map((e) => e.unverified), top, "#d62728", true);
}

async function poll() {
  try {
    const [st, metrics, usage] = await Promise.all([api("status"), api("metrics"), api("usage")]);
    state.status = st; state.metrics = metrics; state.usage = usage; state.authorized = true;
    showNode(st);
    showUsage(usage);
    sample(st);
    drawThroughput();
    drawEarnings();
    $("state").textContent = "live, updated " + new Date().toLocaleTimeString();
    $("state").className = "state";
  } catch (err) {
    state.authorized = err.message === "unauthorized" ? false : state.authorized;
    $("state").textContent = err.message === "unauthorized"
      ? "not logged in: open the URL `tidewire dashboard` printed" : String(err.message);
    $("state").className = "state bad";
  }
}

if (token) {
  poll();
  setInterval(poll, POLL_MS);
} else {
  $("state").textContent = "not logged in: open the URL `tidewire dashboard` printed";
  $("state").className = "state bad";
}

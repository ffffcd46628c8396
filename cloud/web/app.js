// The operator page: asks /ui/state every second and redraws the tables.  Every value from the
// server goes in as text (textContent), never as HTML: an external_id or an error text is the
// shop's data and must not become markup.
"use strict";

const POLL_MS = 1000;

const OPERATIONS = {
  sell: "Приход",
  sell_refund: "Возврат прихода",
  buy: "Расход",
  buy_refund: "Возврат расхода",
  sell_correction: "Коррекция прихода",
  buy_correction: "Коррекция расхода",
  sell_refund_correction: "Коррекция возврата прихода",
  buy_refund_correction: "Коррекция возврата расхода",
};
const STATUSES = { wait: "в очереди", done: "пробит", fail: "ошибка" };
const REGISTER_STATES = {
  ok: "работает",
  failing: "сбой",
  settling: "выясняем исход",
  offline: "нет связи",
};
const OFD_STATES = { waiting: "ждёт ОФД", acknowledged: "принят ОФД" };

const seen = new Set(); // receipts already drawn once: a new one is highlighted

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function pill(value, names) {
  return el("span", names[value] || value || "—", "pill " + (value || ""));
}

function money(kopecks) {
  if (kopecks === null || kopecks === undefined) return "";
  const sign = kopecks < 0 ? "−" : "";
  const abs = Math.abs(kopecks);
  const rubles = Math.floor(abs / 100).toLocaleString("ru-RU");
  return sign + rubles + "," + String(abs % 100).padStart(2, "0") + " ₽";
}

function clock(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  const today = new Date();
  const time = when.toLocaleTimeString("ru-RU");
  return when.toDateString() === today.toDateString()
    ? time
    : when.toLocaleDateString("ru-RU") + " " + time;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell);
    else if (cell && typeof cell === "object") {
      td.textContent = cell.text === undefined || cell.text === null ? "" : String(cell.text);
      if (cell.className) td.className = cell.className;
      if (cell.title) td.title = cell.title;
    } else td.textContent = cell === undefined || cell === null ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fnCell(register) {
  if (!register.fn_expires) return { text: "—" };
  const days = register.fn_days_left;
  const date = new Date(register.fn_expires + "T00:00:00").toLocaleDateString("ru-RU");
  let className = "";
  if (days < 0) className = "expired";
  else if (days <= 30) className = "soon";
  return { text: date + " (" + days + " дн.)", className: className, title: register.fn_serial };
}

function stateCell(register) {
  const box = el("span");
  box.appendChild(pill(register.state, REGISTER_STATES));
  if (register.detail) box.appendChild(el("span", register.detail, "detail"));
  return box;
}

function paperText(paper) {
  if (paper === null || paper === undefined) return "—";
  return paper ? "есть" : "нет!";
}

function drawRegisters(registers) {
  const body = document.querySelector("#registers tbody");
  const rows = registers.map((r) => {
    const tr = row([
      { text: r.name, className: "mono" },
      r.group,
      stateCell(r),
      fnCell(r),
      { text: r.ofd_unsent, className: "num" + (r.ofd_unsent > 0 ? " soon" : "") },
      { text: paperText(r.paper), className: r.paper === false ? "expired" : "" },
      { text: r.in_flight, className: "num" },
      { text: r.done, className: "num" },
    ]);
    tr.dataset.register = r.name;
    tr.dataset.state = r.state;
    return tr;
  });
  body.replaceChildren(...rows);
  document.getElementById("registers-empty").hidden = registers.length > 0;
}

function drawReceipts(receipts) {
  const body = document.querySelector("#receipts tbody");
  const first = seen.size === 0;
  const rows = receipts.map((r) => {
    let receipt = "";
    if (r.link) {
      receipt = el("a", "открыть");
      receipt.href = r.link;
      receipt.target = "_blank";
      receipt.rel = "noopener";
    }
    const status = el("span");
    status.appendChild(pill(r.status, STATUSES));
    if (r.error) status.appendChild(el("span", r.error, "detail"));
    const tr = row([
      clock(r.accepted_at),
      r.group,
      OPERATIONS[r.operation] || r.operation,
      { text: r.external_id, className: "mono", title: r.uuid },
      { text: money(r.total), className: "num" },
      status,
      { text: r.register || "", className: "mono" },
      { text: r.document_number, className: "num" },
      r.ofd ? pill(r.ofd, OFD_STATES) : "",
      receipt,
    ]);
    tr.dataset.uuid = r.uuid;
    tr.dataset.status = r.status;
    if (!first && !seen.has(r.uuid)) tr.className = "fresh";
    seen.add(r.uuid);
    return tr;
  });
  body.replaceChildren(...rows);
  document.getElementById("receipts-empty").hidden = receipts.length > 0;
}

function draw(state) {
  document.getElementById("login").textContent = state.login;
  document.getElementById("groups").textContent = "группы: " + state.groups.join(", ");
  document.getElementById("queue-total").textContent = state.queue.total;
  const up = state.registers.filter((r) => r.state === "ok").length;
  document.getElementById("registers-up").textContent = up + " / " + state.registers.length;
  const backlog = state.registers.reduce((sum, r) => sum + r.ofd_unsent, 0);
  document.getElementById("ofd-backlog").textContent = backlog;
  const inFlight = state.registers.reduce((sum, r) => sum + r.in_flight, 0);
  document.getElementById("in-flight").textContent = inFlight;
  drawRegisters(state.registers);
  drawReceipts(state.receipts);
}

function showLink(live, words) {
  const link = document.getElementById("link");
  link.className = "link " + (live ? "live" : "stale");
  link.textContent = words;
}

async function refresh() {
  try {
    const answer = await fetch("/ui/state", { cache: "no-store", credentials: "same-origin" });
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    const state = await answer.json();
    draw(state);
    showLink(true, "обновлено " + new Date().toLocaleTimeString("ru-RU"));
  } catch (error) {
    showLink(false, "нет связи с сервером / no link: " + error.message);
  } finally {
    setTimeout(refresh, POLL_MS);
  }
}

refresh();

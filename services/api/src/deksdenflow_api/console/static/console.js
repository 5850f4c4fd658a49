// deksdenflow console: live updates pushed by the event stream (Server-Sent Events), no polling.
// A region with data-stream listens to /console/stream (resuming with Last-Event-ID, as EventSource does
// by itself); with data-live-src it is re-rendered from that fragment when an event arrives (one fetch
// at a time, coalescing a burst), with data-append="events" new rows are appended (at most 100 kept).
(() => {
  "use strict";
  const MAX_ROWS = 100;
  const types = (document.querySelector('meta[name="df-event-types"]')?.content || "").split(",").filter(Boolean);
  window.__dfSwaps = [];

  function listen(url, after, onEvent) {
    const sep = url.includes("?") ? "&" : "?";
    const source = new EventSource(after ? `${url}${sep}after=${after}` : url);
    const handler = (message) => onEvent(message);
    source.onmessage = handler;
    for (const type of types) source.addEventListener(type, handler);
    return source;
  }

  function liveRegion(region) {
    let busy = false;
    let again = false;
    let seen = Number(region.dataset.position || 0);
    let heard = 0; // when the first event not yet on screen arrived (for the bench's breakdown)
    async function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        do {
          again = false;
          const wanted = seen;
          const heardAt = heard;
          heard = 0;
          const response = await fetch(region.dataset.liveSrc, { credentials: "same-origin", headers: { "Accept": "text/html" } });
          if (response.redirected || !response.ok) { if (response.status === 401 || response.redirected) location.reload(); return; }
          const html = await response.text();
          const open = [...region.querySelectorAll("details[open][id]")].map((d) => d.id);
          const focused = document.activeElement && region.contains(document.activeElement) ? document.activeElement.id : null;
          // What a person typed or chose in the region survives its re-render.
          const typed = [...region.querySelectorAll("input[id]:not([type=hidden]), textarea[id], select[id]")]
            .map((el) => [el.id, el.type === "checkbox" ? el.checked : el.value]);
          region.innerHTML = html;
          for (const [id, value] of typed) {
            const el = document.getElementById(id);
            if (!el || !region.contains(el)) continue;
            if (el.type === "checkbox") el.checked = value; else el.value = value;
          }
          for (const id of open) document.getElementById(id)?.setAttribute("open", "");
          if (focused) document.getElementById(focused)?.focus();
          const shown = region.querySelector("[data-position]");
          window.__dfSwaps.push({ position: Math.max(wanted, Number(shown?.dataset.position || 0)), heard: heardAt, at: Date.now() });
          if (window.__dfSwaps.length > 10000) window.__dfSwaps.splice(0, 5000);
        } while (again);
      } finally {
        busy = false;
      }
    }
    listen(region.dataset.stream, seen, (message) => {
      seen = Math.max(seen, Number(message.lastEventId || 0));
      heard = heard || Date.now();
      refresh();
    });
  }

  function appendRegion(table) {
    const body = table.querySelector("tbody");
    const filters = JSON.parse(table.dataset.liveFilters || "{}");
    listen(table.dataset.stream, Number(table.dataset.after || 0), (message) => {
      const event = JSON.parse(message.data);
      if (filters.actor && event.actor !== filters.actor) return;
      if (filters.correlation_id && event.correlation_id !== filters.correlation_id) return;
      const row = document.createElement("tr");
      const cells = [String(event.position), event.time, event.type, event.actor, "", (event.correlation_id || "").slice(0, 12)];
      cells.forEach((text, i) => {
        const cell = document.createElement("td");
        if (i === 4 && event.protocol_run_id) {
          const link = document.createElement("a");
          link.href = `/console/runs/${event.protocol_run_id}`;
          link.textContent = event.protocol_run_id.slice(0, 8);
          cell.append(link);
        } else {
          cell.textContent = text;
        }
        row.append(cell);
      });
      body.append(row);
      while (body.rows.length > MAX_ROWS) body.deleteRow(0);
      window.__dfSwaps.push({ position: event.position, at: Date.now() });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const region of document.querySelectorAll("[data-stream][data-live-src]")) liveRegion(region);
    for (const table of document.querySelectorAll('[data-stream][data-append="events"]')) appendRegion(table);
  });
})();

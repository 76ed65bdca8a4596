// alertgate console: live parts over Server-Sent Events, SLA countdowns,
// relative times, keyboard shortcuts, and the silence preview. No framework;
// every page works without it, this only makes it live and quicker.
(function () {
  "use strict";
  var body = document.body;
  var base = body.getAttribute("data-base") || "";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };

  function human(seconds) {
    var sign = seconds < 0 ? "-" : "";
    var t = Math.round(Math.abs(seconds));
    var d = Math.floor(t / 86400), h = Math.floor(t % 86400 / 3600), m = Math.floor(t % 3600 / 60), s = t % 60;
    var pad = function (n) { return n < 10 ? "0" + n : "" + n; };
    var text = d > 0 ? d + "d " + h + "h" : h > 0 ? h + "h " + pad(m) + "m" : m > 0 ? m + "m " + pad(s) + "s" : s + "s";
    return sign + text;
  }

  // SLA clocks count down to their breach instant (computed by the server
  // in the calendar's working time).
  function tickClocks() {
    var now = Date.now();
    $$("[data-deadline]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-deadline")) - now) / 1000;
      if (isNaN(left)) return;
      if (left <= 0) {
        el.textContent = "breached";
        el.classList.remove("ok", "warn");
        el.classList.add("breached");
      } else {
        el.textContent = human(left) + " left";
      }
    });
  }

  function tickTimes() {
    var now = Date.now();
    $$("time[data-ago]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      if (!el.title) el.title = el.textContent;
      var s = (now - t) / 1000;
      el.textContent = s >= 0 ? human(s) + " ago" : "in " + human(-s);
    });
  }

  // Live parts: the server says "something changed" (with its version);
  // the page fetches its live part again and swaps it in, keeping the
  // selection and the current row.
  var live = $("[data-live]");
  var fetching = false, again = false, etag = null, wanted = 0;
  function shown() { return Number(body.getAttribute("data-version") || 0); }
  function swap(html, v) {
    var checked = $$("input[name=id]:checked", live).map(function (c) { return c.value; });
    var cur = $("[data-row].current", live);
    var curId = cur ? cur.getAttribute("data-id") : null;
    // What the person is typing inside the live part survives the swap.
    var kept = $$("[data-keep]", live).map(function (k) { return [k.id, k.value, document.activeElement === k]; });
    live.innerHTML = html;
    kept.forEach(function (k) {
      var el = document.getElementById(k[0]);
      if (el) { el.value = k[1]; if (k[2]) el.focus(); }
    });
    checked.forEach(function (id) { var c = $("input[name=id][value='" + id + "']", live); if (c) c.checked = true; });
    if (curId) { var r = $("[data-row][data-id='" + curId + "']", live); if (r) r.classList.add("current"); }
    if (v) body.setAttribute("data-version", v);
    var t = $("[data-title]", live);
    if (t) document.title = t.getAttribute("data-title");
    tickClocks(); tickTimes();
  }
  function refresh() {
    if (!live) return;
    if (fetching) { again = true; return; }
    fetching = true;
    var url = location.pathname + location.search + (location.search ? "&" : "?") + "partial=1";
    var headers = { "Accept": "text/html" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: headers }).then(function (res) {
      if (res.status === 401 || res.redirected) { location.reload(); return null; }
      var v = res.headers.get("x-alertgate-view-version");
      // The server may answer with a view rendered just before the change
      // this page heard of: ask again shortly.
      if (v && Number(v) < wanted) setTimeout(refresh, 700);
      // Never go back: a part older than what the page shows is not swapped in.
      if (v && Number(v) < shown()) return null;
      // 304: the view is as shown (the change was elsewhere).
      if (res.status === 304) { if (v) body.setAttribute("data-version", v); return null; }
      if (!res.ok) return null;
      etag = res.headers.get("etag");
      return res.text().then(function (html) { swap(html, v); });
    }).catch(function () {}).then(function () {
      fetching = false;
      if (again) { again = false; refresh(); }
    });
  }

  function listen() {
    if (!live || !window.EventSource) return;
    // The stream looks at this page's live part and speaks only when it changed.
    var view = location.pathname.slice(base.length) + location.search;
    var es = new EventSource(base + "/events?view=" + encodeURIComponent(view));
    es.addEventListener("change", function (e) {
      // Only a newer version than the page shows is worth a request (the
      // first event may name an older render the server still caches).
      if (Number(e.data) > shown()) { wanted = Math.max(wanted, Number(e.data)); refresh(); }
    });
    // A changed live part, sent whole: version, ETag, then the HTML.
    es.addEventListener("part", function (e) {
      var lines = e.data.split("\n");
      var v = lines[0];
      if (Number(v) < shown()) return;
      etag = lines[1];
      wanted = Math.max(wanted, Number(v));
      swap(lines.slice(2).join("\n"), v);
    });
    es.onerror = function () {
      // The browser reconnects by itself unless the stream was refused.
      if (es.readyState === 2) setTimeout(listen, 5000);
    };
  }

  // Keyboard shortcuts.
  function rows() { return $$("[data-rows] [data-row]"); }
  function current() { return $("[data-row].current"); }
  function move(step) {
    var all = rows();
    if (!all.length) return;
    var i = all.indexOf(current());
    var next = all[Math.max(0, Math.min(all.length - 1, i < 0 ? 0 : i + step))];
    all.forEach(function (r) { r.classList.remove("current"); });
    next.classList.add("current");
    next.scrollIntoView({ block: "nearest" });
    var link = $("a", next);
    if (link) link.focus({ preventScroll: true });
  }
  function bulk(which) {
    var button = $(which === "a" ? "#bulk-ack" : "#bulk-resolve");
    if (button) {
      var any = $$("input[name=id]:checked").length > 0;
      var cur = current();
      if (!any && cur) { var c = $("input[name=id]", cur); if (c) c.checked = true; else return; }
      if (any || cur) button.click();
      return;
    }
    var single = $(which === "a" ? "#do-acknowledge" : "#do-resolve");
    if (single) single.click();
  }
  var pendingG = false;
  document.addEventListener("keydown", function (e) {
    var tag = (e.target.tagName || "").toLowerCase();
    if (e.ctrlKey || e.metaKey || e.altKey || tag === "input" || tag === "textarea" || tag === "select" || e.target.isContentEditable) return;
    if (pendingG) {
      pendingG = false;
      var to = { i: "/incidents", a: "/alerts", o: "/oncall", s: "/silences", p: "/problems", c: "/changes", n: "/notifications", r: "/reports" }[e.key];
      if (to) { location.href = base + to; e.preventDefault(); }
      return;
    }
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "x": var c = current(); var box = c && $("input[name=id]", c); if (box) box.checked = !box.checked; break;
      case "o": case "Enter":
        var r = current();
        if (r && r.getAttribute("data-href") && (e.key === "o" || e.target === document.body)) { location.href = r.getAttribute("data-href"); break; }
        return;
      case "a": case "r": bulk(e.key); break;
      case "/": var s = $("[data-search]"); if (s) s.focus(); break;
      case "?": openHelp(); break;
      case "g": pendingG = true; break;
      default: return;
    }
    e.preventDefault();
  });
  function openHelp() { var d = $("#help"); if (d && d.showModal && !d.open) d.showModal(); }
  $$("[data-help]").forEach(function (b) { b.addEventListener("click", openHelp); });

  // Select every incident shown.
  document.addEventListener("change", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("data-select-all")) {
      $$("input[name=id]").forEach(function (c) { c.checked = e.target.checked; });
    }
  });

  // How many firing alerts a silence would match, while it is typed.
  var preview = $("[data-preview]"), timer = null;
  if (preview) {
    preview.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var out = $("#s-preview");
        fetch(base + "/silences/preview?matchers=" + encodeURIComponent(preview.value), { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (p) {
            if (p.error) { out.textContent = p.error; return; }
            out.textContent = "";
            out.appendChild(document.createTextNode("Matches "));
            var b = document.createElement("strong");
            b.id = "preview-count";
            b.textContent = p.count + (p.more ? "+" : "");
            out.appendChild(b);
            out.appendChild(document.createTextNode(" firing alert" + (p.count === 1 ? "" : "s") + " now."));
          }).catch(function () {});
      }, 250);
    });
  }

  tickClocks(); tickTimes();
  setInterval(tickClocks, 1000);
  setInterval(tickTimes, 15000);
  listen();
})();

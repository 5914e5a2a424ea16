// The web view's only script: live updates of the page it is on, and the evidence matrix's failure details.
// Server-sent events say that something changed; the page then fetches its live part (`?partial=1`, the same
// server-rendered, escaped markup as a full load) and swaps it in. Without EventSource, or when the stream
// fails for good, it polls instead. No inline script anywhere: the Content-Security-Policy forbids it.
(function () {
  "use strict";

  var body = document.body;
  var POLL_MS = 3000;
  var SAFETY_POLL_MS = 30000;

  function setState(text, mode) {
    var el = document.getElementById("live-state");
    if (el) { el.textContent = text; }
    body.setAttribute("data-live-mode", mode);
  }

  function liveUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    return url.pathname + url.search;
  }

  var fetching = false;
  var again = false;

  function refresh() {
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(liveUrl(), { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var live = document.getElementById("live");
        if (!live) { return; }
        var parsed = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html");
        var fresh = parsed.body.firstElementChild;
        live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes));
        body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function (error) { setState("update failed (" + error.message + "), retrying", "error"); })
      .finally(function () {
        fetching = false;
        if (again) { again = false; refresh(); }
      });
  }

  var pollTimer = null;

  function poll(everyMs, mode) {
    if (pollTimer !== null) { clearInterval(pollTimer); }
    pollTimer = setInterval(refresh, everyMs);
    if (mode) { setState("live (polling)", mode); }
  }

  function follow(url) {
    if (!window.EventSource) { poll(POLL_MS, "polling"); return; }
    var source = new EventSource(url, { withCredentials: true });
    source.addEventListener("open", function () { setState("live", "sse"); });
    source.addEventListener("update", refresh);
    source.addEventListener("changed", refresh);
    source.addEventListener("done", function () {
      source.close();
      refresh();
      setState("finished", "done");
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) { poll(POLL_MS, "polling"); }
    });
    poll(SAFETY_POLL_MS, null); // runs on other replicas are not on this one's stream
  }

  function showFailure(cell) {
    var detail = document.getElementById("failure-detail");
    if (!detail) { return; }
    var author = cell.parentElement ? cell.parentElement.getAttribute("data-author") : "";
    detail.textContent = (author ? author + ": " : "") + (cell.getAttribute("data-failure") || "failed");
    detail.hidden = false;
  }

  document.addEventListener("click", function (event) {
    var cell = event.target.closest ? event.target.closest("td.cell.fail") : null;
    if (cell) { showFailure(cell); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.matches && event.target.matches("td.cell.fail")) {
      showFailure(event.target);
    }
  });

  var events = body.getAttribute("data-events");
  var pollMs = parseInt(body.getAttribute("data-poll") || "0", 10);
  if (events) {
    follow(events);
  } else if (pollMs > 0) {
    poll(pollMs, "polling"); // a page without a stream of its own (a running plan)
  } else {
    setState("", "static");
  }
})();

// spendcap console: the events page's live feed. The server sends each new event as the table
// row to insert, rendered and escaped as the page's own rows are; the browser reconnects by
// itself and resumes from the last event it received.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var body = document.querySelector("#events tbody");
  if (!live || !body || !window.EventSource) {
    return;
  }
  var feed = null;
  function onEvent(m) {
    var none = body.querySelector("tr.none");
    if (none) {
      none.remove();
    }
    body.insertAdjacentHTML("afterbegin", m.data);
    live.textContent = "New events appear here as they are written (last at " + new Date().toLocaleTimeString() + ").";
    // Where to resume if the page comes back from the browser's cache.
    live.dataset.stream = live.dataset.stream.replace(/after=[^&]*/, "after=" + encodeURIComponent(m.lastEventId));
  }
  function open() {
    feed = new EventSource(live.dataset.stream);
    feed.addEventListener("event", onEvent);
    feed.addEventListener("open", function () {
      live.classList.remove("error");
      live.dataset.state = "open";
    });
    feed.addEventListener("error", function () {
      live.classList.add("error");
      live.dataset.state = "reconnecting";
      live.textContent = "The live feed is reconnecting.";
    });
  }
  // A page left for another keeps no connection open; shown again from the cache, it resumes.
  window.addEventListener("pagehide", function () {
    if (feed) {
      feed.close();
      feed = null;
    }
  });
  window.addEventListener("pageshow", function () {
    if (!feed) {
      open();
    }
  });
})();

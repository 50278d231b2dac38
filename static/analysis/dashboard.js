// The survival dashboard: notice newer data. Every few seconds (data-poll-seconds) ask the server
// for the data version; when it differs from the one the page was computed at, show the banner.
// The page works without this script: it is only the notice.
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  var banner = document.getElementById("new-data");
  if (!root || !banner || !window.fetch) return;
  var shown = root.getAttribute("data-version");
  var seconds = Math.max(1, parseInt(root.getAttribute("data-poll-seconds"), 10) || 20);
  var url = root.getAttribute("data-version-url");
  var timer;

  function check() {
    if (document.hidden) return; // a background tab asks again when it is shown
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.data_version && data.data_version !== shown) {
          banner.hidden = false;
          banner.setAttribute("data-new-version", data.data_version);
          window.clearInterval(timer); // one notice is enough
        }
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }

  timer = window.setInterval(check, seconds * 1000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) check(); });
  banner.querySelector("a").addEventListener("click", function (event) {
    event.preventDefault();
    window.location.reload();
  });
})();
